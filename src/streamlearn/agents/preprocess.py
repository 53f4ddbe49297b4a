"""The preprocess agent: ``telemetry.events`` → ``events.clean``.

For each event: validate, deduplicate on event id within a window, filter bots (the rule
that fired recorded), enrich (user agent, optional country), make compliant (full IPs
dropped or pseudonymised). Records that cannot be decoded, or whose required fields are
empty, go to ``events.rejected`` with the reason. :class:`Preprocessor` is the per-event
logic over plain mappings (the Quix app in ``bench/`` runs it too); :class:`PreprocessStep`
is the agent.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from streamlearn.agents.bots import BotRules, bot_rule, expire_bot_state
from streamlearn.agents.event_ids import canonical_uuid
from streamlearn.agents.geo import CountryLookup
from streamlearn.agents.user_agents import UserAgentInfo, analyse_user_agent
from streamlearn.exceptions import ConfigurationError
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import FETCH_HOLD_MS, Emit, Record, Step
from streamlearn.serde.timestamps import DATETIME_MAX_MS, DATETIME_MIN_MS
from streamlearn.settings import Settings

AGENT = "preprocess"
MAX_CLIENT_AHEAD_S = 60.0
"""A ``client_ts`` more than this after ``received_ts`` is a wrong clock (an event cannot
happen after the collector received it): the received time is the event time instead.
Sessions follow event time per partition, so one event 23 h ahead (within the 24 h
``max_clock_skew_s`` allowed behind) closed every open session of its partition and had
the next minute of its events dropped as expired. A ``received_ts`` more than this after
the broker appended the record is refused for the same reason (the producing host's clock)."""
Outcome = Literal["clean", "duplicate", "bot", "invalid"]
# Expiry scans the partition's ids; once per tenth of the window amortises the scan.
MIN_EXPIRE_EVERY_MS = 10_000


@dataclass(frozen=True)
class Processed:
    outcome: Outcome
    clean: dict[str, Any] | None = None
    problem: str | None = None
    """Why an invalid event is (``invalid``)."""
    bot_rule: str | None = None


def _millis(moment: datetime | int) -> int:
    """Epoch ms of a timestamp: the long it is on the wire (the agent decodes its input
    with ``plain_inputs``), or a ``datetime`` (other callers of :class:`Preprocessor`)."""
    if type(moment) is int:
        return moment
    assert isinstance(moment, datetime)
    return int(moment.timestamp() * 1000)


class Preprocessor:
    """Turns decoded ``TelemetryEvent`` records of one partition into ``CleanEvent`` records
    (or says why not).

    ``seen`` maps event id → [received time (ms), source offset, bot rule or ""] of the
    first record of each event. A record whose event id was seen at *another* offset is a
    duplicate; at the *same* offset it is a replay after a restart and gets the verdict it
    had the first time (its first forward may not have reached Kafka before the crash).
    ``bot_state`` holds the behavioural rules' counters. Both are the partition's state
    (the agent's stores), so they survive restarts and move with their partition; expiry
    works on stream time (received
    times), so a replay expires exactly the same way.
    """

    def __init__(self, settings: Settings, metrics: AgentMetrics) -> None:
        self.metrics = metrics
        # Labelled counters resolved once: label lookups are measurable per event.
        self._counted = {o: metrics.events.labels(outcome=o) for o in ("clean", "duplicate", "bot")}
        self.rules = BotRules.from_settings(settings)
        self.dedup_window_ms = int(settings.dedup_window_s * 1000)
        self.max_skew = timedelta(seconds=settings.max_clock_skew_s)
        self.max_skew_ms = settings.max_clock_skew_s * 1000
        ahead_s = min(settings.max_clock_skew_s, MAX_CLIENT_AHEAD_S)  # a tighter skew wins
        self.max_ahead = timedelta(seconds=ahead_s)
        self.max_ahead_ms = ahead_s * 1000
        key = settings.pseudonymisation_key
        self.ip_key = key.get_secret_value().encode() if key else None
        self.ip_policy = settings.ip_policy
        self.geo = CountryLookup(settings.geoip_database) if settings.geoip_database else None
        if self.ip_policy == "pseudonymise" and self.ip_key is None:
            raise ConfigurationError(
                "STREAMLEARN_IP_POLICY=pseudonymise needs STREAMLEARN_PSEUDONYMISATION_KEY"
            )

    def process(
        self,
        event: dict[str, Any],
        partition: int,
        offset: int,
        seen: MutableMapping[str, list[Any]],
        bot_state: MutableMapping[str, list[int]],
    ) -> Processed:
        """One event read at ``offset`` of ``partition``, with that partition's state."""
        written_id = event["event_id"]
        # None: not a UUID (refused below); one parse per event, for the check and the id.
        event_id = canonical_uuid(written_id) if type(written_id) is str else str(written_id)
        problem = self._invalid_field(event, event_id)
        if problem is not None or event_id is None:
            return Processed("invalid", problem=problem)

        if event_id != written_id and type(written_id) is str:
            # One event written in two forms (upper case, urn:uuid:, braces) is one event,
            # and events.clean holds the form every UUID reader reads.
            event = {**event, "event_id": event_id}
        received_ms = _millis(event["received_ts"])
        first = seen.get(event_id)
        if first is not None and first[1] != offset:
            self._counted["duplicate"].inc()
            return Processed("duplicate")
        agent = analyse_user_agent(event["user_agent"])
        rule: str | None
        if first is None:
            rule = bot_rule(
                self.rules, bot_state, event["user_id"], event["ip"], received_ms, agent
            )
            seen[event_id] = [received_ms, offset, rule or ""]
        else:
            # This very record again (a replay after a crash): the verdict it had, bot
            # counters untouched (they already count it).
            rule = first[2] or None
        if rule is not None:
            self._counted["bot"].inc()
            self.metrics.bots.labels(rule=rule).inc()
            return Processed("bot", bot_rule=rule)

        self._counted["clean"].inc()
        return Processed("clean", clean=self._clean(event, agent, partition, offset))

    @staticmethod
    def _invalid_field(event: dict[str, Any], event_id: str | None) -> str | None:
        """Why ``event`` is refused (None: it is not); ``event_id`` is its id in canonical
        form, None when it is no UUID."""
        for field in ("user_id", "event_type", "app_version"):
            if not str(event[field]).strip():
                return f"field {field} is empty"
        # What plain Avro lets another producer than the collector write, and readers with
        # logical types (fastavro's, Java's) cannot read back from events.clean.
        if event_id is None:
            return f"field event_id is not a UUID: {str(event['event_id'])[:64]!r}"
        for field in ("client_ts", "received_ts"):
            moment = event[field]
            if type(moment) is int and not DATETIME_MIN_MS <= moment <= DATETIME_MAX_MS:
                return f"field {field} is out of range ({moment} epoch ms)"
        return None

    def _clean(
        self, event: dict[str, Any], agent: UserAgentInfo, partition: int, offset: int
    ) -> dict[str, Any]:
        client_ts, received_ts = event["client_ts"], event["received_ts"]
        # Epoch ms as decoded by the agent, datetimes from other callers: the same verdict.
        # A client time behind the received one may be an app sending late; ahead of it by
        # more than clocks drift, it is a wrong clock (MAX_CLIENT_AHEAD_S).
        if type(client_ts) is int:
            plausible = -self.max_skew_ms <= client_ts - received_ts <= self.max_ahead_ms
        else:
            plausible = -self.max_skew <= client_ts - received_ts <= self.max_ahead
        return {
            "event_id": event["event_id"],
            "event_type": event["event_type"],
            "user_id": event["user_id"],
            "session_hint": event["session_hint"],
            "client_ts": client_ts,
            "received_ts": received_ts,
            "event_ts": client_ts if plausible else received_ts,
            "url": event["url"],
            "referrer": event["referrer"],
            "app_version": event["app_version"],
            "browser_family": agent.browser_family,
            "browser_version": agent.browser_version,
            "os_family": agent.os_family,
            "device_class": agent.device_class,
            "geo_country": self.geo.country(event["ip"]) if self.geo and event["ip"] else None,
            "ip_pseudonym": self._pseudonym(event["ip"]),
            "properties": event["properties"],
            "context": event["context"],
            "source_partition": partition,
            "source_offset": offset,
        }

    def _pseudonym(self, ip: str | None) -> str | None:
        if ip is None or self.ip_policy == "drop" or self.ip_key is None:
            return None
        return hmac.new(self.ip_key, ip.encode(), hashlib.sha256).hexdigest()[:32]

    def expire(
        self,
        now_ms: int,
        seen: MutableMapping[str, list[Any]],
        bot_state: MutableMapping[str, list[int]],
    ) -> int:
        """Forget a partition's event ids older than the dedup window and stale counters."""
        horizon = now_ms - self.dedup_window_ms
        old = [event_id for event_id, first in seen.items() if first[0] < horizon]
        for event_id in old:
            del seen[event_id]
        return len(old) + expire_bot_state(bot_state, self.rules, now_ms)


def _ahead_of_kafka(received_ms: int, stamped_ms: int, limit_ms: float) -> str:
    """Why an event stamped ``received_ms`` is refused when Kafka's own timestamp of it is
    ``stamped_ms``: on a topic the broker stamps at append (the topology's telemetry.events),
    ``received_ts`` that much later is the producing host's clock running ahead (a
    ``TelemetryClient`` stamps it with its host's clock)."""
    return (
        f"field received_ts is {(received_ms - stamped_ms) // 1000} s after Kafka received "
        f"the record (more than {limit_ms / 1000:g} s): the producing host's clock is ahead"
    )


class PreprocessStep(Step):
    """The agent: a :class:`Preprocessor` over each partition's event ids and bot counters."""

    name = AGENT
    inputs = ("telemetry.events",)
    outputs = ("events.clean",)
    stores = ("event-ids", "bot-counters", "expiry")
    # Timestamps stay the epoch ms they are on the wire, from the input to events.clean
    # (no datetime made and taken apart again per field), event ids strings.
    plain_inputs = True
    fetch_hold_ms = FETCH_HOLD_MS
    decodes_in_second_process = True  # its decoding is a third of its work: on a second core

    def __init__(self, settings: Settings, metrics: AgentMetrics) -> None:
        self.preprocessor = Preprocessor(settings, metrics)
        self.expire_every_ms = max(MIN_EXPIRE_EVERY_MS, int(settings.dedup_window_s * 100))

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        seen = self.state.of("event-ids", partition)
        bots = self.state.of("bot-counters", partition)
        expiry = self.state.of("expiry", partition)
        last_expiry = expiry.get("last", 0)
        send_clean = emit.to("events.clean")
        process = self.preprocessor.process
        # As far as a client_ts may be after received_ts (60 s): the 24 h skew allowed a
        # clock behind let one event 23 h ahead move sessionise's time on by 23 h.
        max_ahead_ms = self.preprocessor.max_ahead_ms
        for record in records:
            # Expiry runs on stream time, at the record that passes the interval since the
            # partition's last one (in the state): the same records expire the same ids,
            # however they are batched, replayed or moved.
            received_ms = _millis(record.value["received_ts"])
            stamped = record.timestamp_ms
            # (None or -1: no broker time, as a record of the oldest message format has.)
            if stamped is not None and stamped >= 0 and received_ms - stamped > max_ahead_ms:
                # The producer's clock, not the event's time (see _ahead_of_kafka): taken,
                # it would move the partition's time on and later events would expire.
                emit.reject(
                    record, "invalid_field", _ahead_of_kafka(received_ms, stamped, max_ahead_ms)
                )
                continue
            if received_ms - last_expiry > self.expire_every_ms:
                self.preprocessor.expire(received_ms, seen, bots)
                last_expiry = expiry["last"] = received_ms
            result = process(record.value, partition, record.offset, seen, bots)
            clean = result.clean
            if clean is not None:
                send_clean(clean["user_id"], clean)
            elif result.problem is not None:
                emit.reject(record, "invalid_field", result.problem)
