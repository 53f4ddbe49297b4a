"""The asyncio driver: sends :class:`~streamlearn.simulate.traffic.Traffic` in real time.

Every tick (20 ms) the hits due are sent to the collector (``POST /v1/events``): page views
grouped per sender (one request per IP, with ``X-Forwarded-For`` and the actor's user agent,
so behavioural bot rules see per-user IPs when the collector trusts the header), each
malformed item alone (a request is all or nothing). A page with recommendation slots asks the
prediction worker (``POST /v1/models/{model}:predict``, one instance per slot); with the
request ids it answers, the slots that were seen get an impression, the clicked ones a click and
the converted ones a conversion, each when it is due. Feedback of a tick goes in one request.

Against servers with their doors on (`up` with the HTTP settings of docs/security.md), the
options carry the TLS context to verify them with, the collector write key (its header,
on event requests only) and the prediction API's bearer token (on predict requests only).

A worker or collector that is down, slow or refusing never stops the simulator: the error is
counted and that service is left alone for a back-off (0.5 s doubling to 10 s) during which
its traffic is skipped (counted as ``slots_skipped`` or ``dropped``). At most
``max_in_flight`` requests run at once; beyond ``max_backlog`` waiting, new sends are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from streamlearn.collector.write_keys import HEADER as WRITE_KEY
from streamlearn.http_auth import bearer_header
from streamlearn.simulate.ledger import Ledger
from streamlearn.simulate.summary import Summary
from streamlearn.simulate.traffic import Hit, Slot, Traffic, TrafficConfig

log = logging.getLogger(__name__)

TICK_S = 0.02
FEEDBACK_BATCH = 200


@dataclass(frozen=True)
class LoopOptions:
    collector_url: str = "http://127.0.0.1:8001"
    predict_url: str = "http://127.0.0.1:8000"
    model: str = "ctr"
    duration_s: float | None = None
    timeout_s: float = 5.0
    max_in_flight: int = 64
    max_backlog: int = 2000
    backoff_min_s: float = 0.5
    backoff_max_s: float = 10.0
    ssl: ssl.SSLContext | None = None
    """What https servers are verified with (None: the system's trust store)."""
    write_key: str | None = field(default=None, repr=False)
    """Sent to the collector as its write-key header (secrets stay out of reprs)."""
    api_token: str | None = field(default=None, repr=False)
    """Sent to the prediction API as a bearer token."""


class _Backoff:
    def __init__(self, options: LoopOptions) -> None:
        self.options = options
        self.delay = 0.0
        self.until = 0.0

    def blocked(self) -> bool:
        return time.monotonic() < self.until

    def failed(self) -> None:
        self.delay = min(
            self.options.backoff_max_s, max(self.options.backoff_min_s, self.delay * 2)
        )
        self.until = time.monotonic() + self.delay

    def succeeded(self) -> None:
        self.delay = 0.0


class Simulator:
    """One run: the traffic, one HTTP session, the feedback due, and the summary."""

    def __init__(self, config: TrafficConfig, options: LoopOptions, traffic: Traffic) -> None:
        self.config, self.options, self.traffic = config, options, traffic
        self.summary = Summary(
            seed=config.seed, rate_target=config.rate, drift_at_s=config.drift_at_s
        )
        self.events_url = options.collector_url.rstrip("/") + "/v1/events"
        self.predict_url = f"{options.predict_url.rstrip('/')}/v1/models/{options.model}:predict"
        self.events_headers = {} if options.write_key is None else {WRITE_KEY: options.write_key}
        self.predict_headers = bearer_header(options.api_token)
        self.collector_backoff = _Backoff(options)
        self.worker_backoff = _Backoff(options)
        self.feedback: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()
        self.tasks: set[asyncio.Task[None]] = set()
        self.limit = asyncio.Semaphore(options.max_in_flight)
        self.started = 0.0
        self.ledger: Ledger | None = None
        """Set it to record every answer by identity (the ground truth of a chaos run)."""

    def now(self) -> float:
        return time.monotonic() - self.started

    def _spawn(self, coroutine: Any, size: int) -> bool:
        """Run ``coroutine`` unless the backlog is full (then its ``size`` items are dropped)."""
        if len(self.tasks) >= self.options.max_backlog:
            coroutine.close()
            self.summary.dropped += size
            return False
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> Summary:
        self.session = session
        self.started = time.monotonic()
        duration = self.options.duration_s
        while not stop.is_set() and (duration is None or self.now() < duration):
            self.step(self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
        self.summary.elapsed_s = self.now()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.options.timeout_s + 1)
        for task in list(self.tasks):
            task.cancel()
        self.summary.feedback_pending_at_stop = len(self.feedback)
        return self.summary.finish()

    def step(self, now: float) -> None:
        # Feedback first: under overload it is what the learning loop needs most.
        due: list[dict[str, Any]] = []
        while self.feedback and self.feedback[0][0] <= now:
            due.append(heapq.heappop(self.feedback)[2])
        for start in range(0, len(due), FEEDBACK_BATCH):
            chunk = due[start : start + FEEDBACK_BATCH]
            self._send(chunk, None, None, malformed=False)
        hits = self.traffic.until(now)
        groups: dict[tuple[str, str], list[Hit]] = {}
        for hit in hits:
            self.summary.count(self.summary.generated, hit.kind)
            if hit.kind == "page_view":
                self.summary.count(self.summary.actors, hit.actor.kind)
            if hit.late:
                self.summary.late += 1
            if hit.kind == "malformed":
                self._send_events([hit])
            else:
                groups.setdefault((hit.actor.ip, hit.actor.user_agent), []).append(hit)
            if hit.slots and not self._ask_worker(hit):
                self.summary.slots_skipped += len(hit.slots)
        for group in groups.values():
            self._send_events(group)

    def _ask_worker(self, hit: Hit) -> bool:
        return not self.worker_backoff.blocked() and self._spawn(self._predict(hit), 0)

    def _send_events(self, hits: Sequence[Hit]) -> None:
        actor = hits[0].actor
        self._send([h.item for h in hits], actor.ip, actor.user_agent, hits[0].kind == "malformed")

    def _send(
        self, items: list[dict[str, Any]], ip: str | None, agent: str | None, malformed: bool
    ) -> None:
        if self.collector_backoff.blocked() and not malformed:
            self.summary.dropped += len(items)
            return
        headers = {
            **self.events_headers,
            "X-App-Version": str(items[0].get("app_version", self.config.app_version)),
        }
        if ip is not None:
            headers["X-Forwarded-For"] = ip
        if agent is not None:
            headers["User-Agent"] = agent
        self._spawn(self._post_events(items, headers, malformed), len(items))

    async def _post_events(
        self, items: list[dict[str, Any]], headers: dict[str, str], malformed: bool
    ) -> None:
        for item in items:
            self.summary.count(self.summary.sent, item.get("kind", "event"))
        try:
            async with (
                self.limit,
                self.session.post(self.events_url, json=items, headers=headers) as response,
            ):
                status = response.status
                body = await response.read()
                retry_after = "Retry-After" in response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            if self.ledger is not None:
                self.ledger.unanswered_items(items)
            self.summary.collector_errors += 1
            self.summary.dropped += len(items)
            self.collector_backoff.failed()
            log.debug("collector: %r", exc)
            return
        if self.ledger is not None:
            self._record(items, status, body, retry_after)
        if status == 202:
            self.collector_backoff.succeeded()
            for item in items:
                self.summary.count(self.summary.accepted, item.get("kind", "event"))
            return
        self.summary.count(self.summary.refused, str(status))
        if malformed and status == 400:
            self.summary.malformed_refused += 1
        elif status >= 500:
            self.collector_backoff.failed()

    def _record(
        self, items: list[dict[str, Any]], status: int, body: bytes, retry_after: bool
    ) -> None:
        assert self.ledger is not None
        try:
            answer = json.loads(body) if status == 503 else None
        except ValueError:
            answer = None
        self.ledger.answered(items, status, answer if isinstance(answer, dict) else None)
        self.ledger.retry_after += status == 503 and retry_after

    async def _predict(self, hit: Hit) -> None:
        body = {
            "instances": [
                {"user_id": hit.actor.user_id, "features": s.features, "context": s.context}
                for s in hit.slots
            ]
        }
        self.summary.predict_requests += 1
        try:
            async with self.limit:
                sent = time.perf_counter()
                async with self.session.post(
                    self.predict_url, json=body, headers=self.predict_headers
                ) as response:
                    answer = await response.json() if response.status == 200 else None
                    status = response.status
                self.summary.record_predict_latency(time.perf_counter() - sent)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            answer, status = None, 0
            log.debug("prediction worker: %r", exc)
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(hit.slots):
            self.summary.predict_errors += 1
            self.summary.slots_skipped += len(hit.slots)
            if status == 0 or status >= 500:
                self.worker_backoff.failed()
            return
        self.worker_backoff.succeeded()
        answered_at = self.now()
        for slot, prediction in zip(hit.slots, predictions, strict=True):
            self.summary.predictions += 1
            if prediction.get("degraded"):
                reason = str(prediction.get("degraded_reason"))
                self.summary.count(self.summary.degraded, reason)
            self._schedule(answered_at, hit, slot, prediction)

    def _schedule(self, at_s: float, hit: Hit, slot: Slot, prediction: dict[str, Any]) -> None:
        if not slot.seen:
            self.summary.served_not_seen += 1
            return
        request_id = str(prediction["request_id"])
        if self.ledger is not None:
            self.ledger.answered_at[request_id] = time.time()
        self.summary.record_impression(
            slot.p_click, slot.clicked, self.traffic.truth.drifted(hit.at_s), prediction.get("arm")
        )
        moments: list[tuple[str, float, float | None]] = [
            ("impression", slot.impression_after_s, None)
        ]
        if slot.clicked:
            self.summary.clicks += 1
            moments.append(("click", slot.click_after_s, None))
        if slot.converted:
            self.summary.conversions += 1
            moments.append(("conversion", slot.conversion_after_s, slot.value))
        for kind, after_s, value in moments:
            client_ms = self.traffic.start_ms + int(
                (at_s + after_s + hit.actor.clock_skew_s) * 1000
            )
            item: dict[str, Any] = {
                "request_id": request_id,
                "event_id": self.traffic.new_id(),
                "kind": kind,
                "user_id": hit.actor.user_id,
                "client_ts": client_ms,
                "app_version": self.traffic.app_version_at(at_s + after_s),
            }
            if value is not None:
                item["value"] = value
            heapq.heappush(self.feedback, (at_s + after_s, next(self._seq), item))


def new_simulator(config: TrafficConfig, options: LoopOptions) -> Simulator:
    """A simulator whose world starts now (create it just before running it)."""
    return Simulator(config, options, Traffic(config, start_ms=int(time.time() * 1000)))


async def run_simulator(simulator: Simulator, stop: asyncio.Event | None = None) -> Summary:
    """Run until ``stop`` is set or the duration has passed; ``simulator.summary`` is
    readable (live) meanwhile."""
    options = simulator.options
    timeout = aiohttp.ClientTimeout(total=options.timeout_s)
    connector = aiohttp.TCPConnector(limit=options.max_in_flight, ssl=options.ssl or True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return await simulator.run(session, stop or asyncio.Event())


async def run_simulation(
    config: TrafficConfig, options: LoopOptions, stop: asyncio.Event | None = None
) -> Summary:
    """Run until ``stop`` is set or ``options.duration_s`` has passed; the summary."""
    return await run_simulator(new_simulator(config, options), stop)
