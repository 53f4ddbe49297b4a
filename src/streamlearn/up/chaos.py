"""``up --simulate --chaos``: faults injected on a seeded schedule while the simulation runs.

Three kinds of fault, one at a time, ``interval_s`` apart:

- ``kill:PART``: SIGKILL a supervised part; the supervisor reports the crash and starts it
  again (``up/children.py``), as it would after any crash;
- ``pause:PART``: SIGSTOP an agent for longer than the consumer session timeout, so its
  group moves its partitions away, then SIGCONT: it must find its way back;
- ``broker``: stop the embedded broker (a clean stop) for ``outage_s``, then start it
  again. Meanwhile the collector answers 503 with ``Retry-After``, the prediction worker
  goes on serving the model it has, and the agents wait.

The schedule is a function of the seed and the options: the same command gives the same
faults at the same seconds. Each fault is printed as it happens and kept in
:attr:`Chaos.faults` (the ``--json`` summary's ``chaos.faults``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamlearn.agents import AGENT_NAMES
from streamlearn.kafka_local import BrokerStatus, EmbeddedKafka
from streamlearn.kafka_local.exceptions import BrokerStartError
from streamlearn.ports import PortHold
from streamlearn.simulate import Simulator
from streamlearn.up.broker import start_holding_port, stop_holding_port
from streamlearn.up.children import Child
from streamlearn.up.report import Check

KILLABLE = (*AGENT_NAMES, "archive", "collector", "serve", "registry")
"""Parts a ``kill`` may hit: each agent, the archive, the front doors and the registry."""
PAUSABLE = AGENT_NAMES
"""Parts a ``pause`` may hit: members of consumer groups (the session timeout is theirs)."""
PAUSE_BEYOND_SESSION_S = 4.0
RESTART_RETRY_S = 150.0
"""How long a broker that does not start again after its outage is tried again (a port a
client connected itself to frees within two minutes: its request timeout, then TIME_WAIT)."""
RESTART_RETRY_EVERY_S = 5.0
CHAOS_STREAM = 31
"""Second word of the schedule's generator seed (``[seed, 31]``): the simulated world's
draws (``[seed]``, ``[seed, 11]``, ...) are not shared with it."""
"""How much longer than the consumer session timeout a pause lasts."""


@dataclass(frozen=True)
class ChaosOptions:
    seed: int = 0
    interval_s: float = 15.0
    """Seconds between the end of one fault and the next."""
    faults: tuple[str, ...] = ()
    """Faults in the order to inject them (``kill:PART``, ``pause:PART``, ``broker``); empty:
    one kill of every part in :data:`KILLABLE`, a broker restart and a pause of a random
    agent, in a seeded random order."""
    outage_s: float = 30.0
    """How long the broker stays down."""
    pause_s: float | None = None
    """How long a pause lasts (default: the consumer session timeout + 4 s)."""

    def __post_init__(self) -> None:
        # Finite, and not nan (nan <= 0 is false): a fault at second nan, or a broker
        # down for good, would be run with every part started.
        finite = math.isfinite(self.interval_s) and math.isfinite(self.outage_s)
        if not (finite and self.interval_s > 0 and self.outage_s >= 0):
            raise ValueError(
                f"--chaos-interval {self.interval_s:g}, --chaos-outage {self.outage_s:g}: the "
                "interval must be a positive number of seconds, the outage 0 or more"
            )
        for fault in self.faults:
            kind, _, part = fault.partition(":")
            if not (
                (kind == "kill" and part in KILLABLE)
                or (kind == "pause" and part in PAUSABLE)
                or fault == "broker"
            ):
                raise ValueError(
                    f"unknown fault {fault!r}: kill:PART ({', '.join(KILLABLE)}), "
                    f"pause:AGENT ({', '.join(PAUSABLE)}) or broker"
                )


@dataclass(frozen=True)
class Fault:
    kind: str
    """``kill``, ``pause`` or ``broker``."""
    target: str
    """The part (``kafka`` for the broker)."""
    at_s: float
    """Seconds after the simulation started."""
    lasts_s: float = 0.0


def plan(
    options: ChaosOptions, duration_s: float | None, pause_s: float, with_broker: bool
) -> list[Fault]:
    """The schedule: faults ``interval_s`` apart (after the previous one ended), all
    ending before ``duration_s``. Without a broker of its own, ``up`` skips broker faults."""
    rng = np.random.default_rng([options.seed, CHAOS_STREAM])
    wanted = list(options.faults)
    if not wanted:
        kinds = [f"kill:{part}" for part in KILLABLE]
        kinds += ["broker", f"pause:{PAUSABLE[int(rng.integers(len(PAUSABLE)))]}"]
        wanted = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    faults = []
    at = options.interval_s
    for text in wanted:
        kind, _, part = text.partition(":")
        if kind == "broker" and not with_broker:
            continue
        lasts = {"kill": 0.0, "pause": pause_s, "broker": options.outage_s}[kind]
        # A broker restart is not instant: leave it the time a start takes.
        busy = lasts + (15.0 if kind == "broker" else 0.0)
        if duration_s is not None and at + busy > duration_s:
            break
        faults.append(Fault(kind, part or "kafka", round(at, 1), lasts))
        at += busy + options.interval_s
    return faults


def _counters(simulator: Simulator | None) -> dict[str, int]:
    """The simulator's answers so far (deltas over a fault say what users saw then)."""
    if simulator is None:
        return {}
    summary, ledger = simulator.summary, simulator.ledger
    return {
        "predictions_200": summary.predictions,
        "degraded": sum(summary.degraded.values()),
        "predict_errors": summary.predict_errors,
        "events_accepted": summary.accepted.get("event", 0),
        "collector_503": summary.refused.get("503", 0),
        "collector_503_retry_after": 0 if ledger is None else ledger.retry_after,
        "collector_unanswered": summary.collector_errors,
    }


class Chaos:
    """Injects the planned faults into a running ``up``."""

    def __init__(
        self,
        faults: Sequence[Fault],
        children: Callable[[], Sequence[Child]],
        broker: EmbeddedKafka | None,
        broker_timeout_s: float,
        say: Callable[[str], None],
        simulator: Simulator | None,
        interval_s: float = 0.0,
    ) -> None:
        self.plan = list(faults)
        self.interval_s = interval_s
        self.children = children
        self.broker = broker
        self.broker_timeout_s = broker_timeout_s
        self.say = say
        self.simulator = simulator
        self.faults: list[dict[str, Any]] = []
        """What was injected, as it happened."""
        self.broker_pid: int | None = None
        self.broker_down = False
        """Whether a broker fault's restart failed: Kafka is down for the rest of the run."""
        self._paused: int | None = None

    def _child(self, name: str) -> Child | None:
        return next((c for c in self.children() if c.spec.name == name), None)

    def _log(self, at_s: float, fault: Fault, detail: str, **more: Any) -> None:
        record = {"at_s": round(at_s, 1), "kind": fault.kind, "target": fault.target,
                  "detail": detail, "ended": time.time(), **more}  # fmt: skip
        self.faults.append(record)
        self.say(f"chaos {at_s:.0f}s: {detail}")

    async def run(self, started: float, stop: asyncio.Event) -> None:
        """Inject each fault at its second (``started``: monotonic start of the traffic)
        until ``stop``; a pause in progress is always let go."""
        try:
            free_at = started
            for fault in self.plan:
                # At its second, or an interval after the previous fault ended if that ran
                # late (a broker slow to restart on a loaded machine): one at a time.
                due = max(started + fault.at_s, free_at + self.interval_s)
                wait = due - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                if stop.is_set():
                    return
                await self._inject(fault, time.monotonic() - started, stop)
                free_at = time.monotonic()
        finally:
            self._let_go()

    async def _inject(self, fault: Fault, at_s: float, stop: asyncio.Event) -> None:
        if fault.kind == "broker":
            await self._restart_broker(fault, at_s, stop)
            return
        child = self._child(fault.target)
        pid = None if child is None else child.pid
        if child is None or pid is None or child.state != "running":
            self._log(at_s, fault, f"{fault.target} is not running: {fault.kind} skipped")
            return
        if fault.kind == "kill":
            os.kill(pid, signal.SIGKILL)
            self._log(at_s, fault, f"SIGKILL {fault.target} (pid {pid})", pid=pid)
            return
        os.kill(pid, signal.SIGSTOP)
        self._paused = pid
        self._log(at_s, fault, f"SIGSTOP {fault.target} (pid {pid}) for {fault.lasts_s:.0f}s",
                  pid=pid)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), fault.lasts_s)
        self._let_go()
        self.say(f"chaos: SIGCONT {fault.target} (pid {pid})")

    async def _start_again(self, broker: EmbeddedKafka, hold: PortHold) -> BrokerStatus:
        """The stopped broker started again on the port ``hold`` holds: a start that fails
        is tried again every :data:`RESTART_RETRY_EVERY_S` for :data:`RESTART_RETRY_S`,
        the port held meanwhile; then its error is raised."""
        address = (broker.config.host, broker.config.port)
        deadline = time.monotonic() + RESTART_RETRY_S
        while True:
            try:
                return await start_holding_port(broker, hold, self.broker_timeout_s, deadline)
            except BrokerStartError as exc:
                if time.monotonic() >= deadline:
                    raise
                self.say(f"chaos: Kafka did not start again ({exc}); retrying in "
                         f"{RESTART_RETRY_EVERY_S:g}s")  # fmt: skip
                hold = PortHold(*address)
                await asyncio.sleep(RESTART_RETRY_EVERY_S)

    def _let_go(self) -> None:
        if self._paused is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._paused, signal.SIGCONT)
            self._paused = None

    async def _restart_broker(self, fault: Fault, at_s: float, stop: asyncio.Event) -> None:
        broker = self.broker
        if broker is None:
            self._log(at_s, fault, "no embedded broker: restart skipped")
            return
        before = _counters(self.simulator)
        # The outage begins with the stop: clients lose the broker while it shuts down.
        began = time.time()
        hold = await stop_holding_port(broker)
        down = time.monotonic()
        self.say(f"chaos {at_s:.0f}s: Kafka stopped; down for {fault.lasts_s:.0f}s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), fault.lasts_s)
        try:
            status = await self._start_again(broker, hold)
        except BrokerStartError as exc:
            self.broker_down = True
            self._log(at_s, fault, f"Kafka did not start again after its outage: {exc}",
                      restart_failed=str(exc))  # fmt: skip
            return
        self.broker_pid = status.pid
        down_s = time.monotonic() - down
        after = _counters(self.simulator)
        during = {key: after[key] - before[key] for key in after}
        self._log(
            at_s, fault,
            f"Kafka restarted (down {down_s:.1f}s, pid {status.pid}); meanwhile predictions "
            f"200: {during.get('predictions_200', 0)}, collector 503: "
            f"{during.get('collector_503', 0)} (Retry-After on "
            f"{during.get('collector_503_retry_after', 0)})",
            down_s=round(down_s, 1), began=began, during=during,
        )  # fmt: skip


KEPT_CHECKS = (
    "events flowed through every stage",
    "no part crashed",
    "every process exited cleanly",
)
"""``up``'s checks that still apply under chaos; those of what the model learned and of the
simulated world's noise judge a run's quality, not its reliability (a run that spends a
minute of its traffic without a broker learns less), and are left to runs without chaos."""
DEPENDENCY_GRACE_S = 90.0
"""After the broker or the registry came back, how long a part that could not start
without it may still exit (it is restarted; a loaded machine starts slowly)."""
Crashed = tuple[str, int, float, bool]
"""(part, exit code, wall-clock time, killed by the supervisor as stuck) of one crash."""


def classify_crashes(
    crashes: Sequence[Crashed], faults: Sequence[dict[str, Any]]
) -> dict[str, list[str]]:
    """Each crash as ``injected`` (a SIGKILL chaos sent), ``dependency`` (the part exited
    while the broker or the registry was down or just back: started again, as any crash),
    ``stuck`` (ready no more, killed and restarted by the supervisor: a part that did not
    recover by itself, named in the table) or ``other`` (a failure)."""
    kills: dict[str, int] = {}
    for fault in faults:
        if fault["kind"] == "kill" and "pid" in fault:
            kills[fault["target"]] = kills.get(fault["target"], 0) + 1
    # From when its stop began (``began``; before, from when it was down), as clients lost it.
    outages = [
        (
            float(f.get("began", float(f["ended"]) - float(f.get("down_s", 0.0)))),
            float(f["ended"]) + DEPENDENCY_GRACE_S,
        )
        for f in faults
        if f["target"] in ("kafka", "registry") and ("pid" in f or "down_s" in f)
    ]
    found: dict[str, list[str]] = {"injected": [], "dependency": [], "stuck": [], "other": []}
    for part, code, at, stuck in sorted(crashes, key=lambda c: c[2]):
        if stuck:
            found["stuck"].append(part)
        elif code == -9 and kills.get(part, 0) > 0:
            kills[part] -= 1
            found["injected"].append(part)
        elif any(start <= at <= end for start, end in outages):
            found["dependency"].append(f"{part} (exit {code})")
        else:
            found["other"].append(f"{part} (exit {code})")
    return found


def with_chaos(
    results: list[Check], crashes: Sequence[Crashed], faults: list[dict[str, Any]]
) -> list[Check]:
    """``up``'s checks of a chaos run: a crash is expected of a part chaos killed, once per
    kill, and of a part that could not start while the broker or the registry was down;
    any other crash still fails. A broker outage must have been seen by users as
    documented: 503s with Retry-After from the collector, 200s from the worker."""
    found = classify_crashes(crashes, faults)
    detail = (
        f"{len(found['injected'])} injected kills restarted; exited while the broker or the "
        f"registry was down, restarted: {', '.join(found['dependency']) or 'none'}; not ready "
        f"any more, killed and restarted by up: {', '.join(found['stuck']) or 'none'}; other: "
        f"{', '.join(found['other']) or 'none'}"
    )
    replaced = [
        Check("no crash but from the injected faults", not found["other"], detail)
        if check.name == "no part crashed"
        else check
        for check in results
        if check.name in KEPT_CHECKS
    ]
    for fault in faults:
        if "restart_failed" in fault:
            replaced.append(
                Check(
                    f"Kafka started again after its outage at {fault['at_s']:.0f}s",
                    False,
                    fault["restart_failed"],
                )
            )
        if fault["kind"] != "broker" or "during" not in fault:
            continue
        during = fault["during"]
        answered = during["collector_503"] > 0 and (
            during["collector_503_retry_after"] == during["collector_503"]
        )
        replaced.append(
            Check(
                f"broker down {fault['down_s']:.0f}s at {fault['at_s']:.0f}s: collector 503 "
                "with Retry-After, worker serving",
                answered and during["predictions_200"] > 0,
                f"collector 503 {during['collector_503']} (Retry-After "
                f"{during['collector_503_retry_after']}), unanswered "
                f"{during['collector_unanswered']}; predictions 200 "
                f"{during['predictions_200']} (degraded {during['degraded']}), errors "
                f"{during['predict_errors']}",
            )
        )
    return replaced
