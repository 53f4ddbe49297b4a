"""The preprocess step for one record: decode, validate, deduplicate, filter bots, enrich,
make compliant. Pure logic over caller-provided state, so the Faust agent, replay and the
unit tests run exactly the same code.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from streamlearn.agents.bots import BotRules, bot_rule, expire_bot_state
from streamlearn.agents.geo import CountryLookup
from streamlearn.agents.metrics import AgentMetrics
from streamlearn.agents.user_agents import UserAgentInfo, analyse_user_agent
from streamlearn.exceptions import ConfigurationError
from streamlearn.serde import AvroSerde, DecodeError
from streamlearn.settings import Settings

AGENT = "preprocess"
Outcome = Literal["clean", "duplicate", "bot", "rejected"]


@dataclass(frozen=True)
class Rejection:
    reason: str
    detail: str
    schema_id: int | None = None


@dataclass(frozen=True)
class Processed:
    outcome: Outcome
    clean: dict[str, Any] | None = None
    rejection: Rejection | None = None
    bot_rule: str | None = None


def rejected_record(
    rejection: Rejection,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    agent: str,
) -> dict[str, Any]:
    """The ``RejectedRecord`` for a record an agent could not use (the raw bytes kept)."""
    return {
        "source_topic": topic,
        "source_partition": partition,
        "source_offset": offset,
        "key": key,
        "value": value,
        "reason": rejection.reason,
        "detail": rejection.detail,
        "schema_id": rejection.schema_id,
        "agent": agent,
        "rejected_ts": datetime.now(UTC),
    }


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Preprocessor:
    """Turns raw ``telemetry.events`` records into ``CleanEvent`` records (or says why not).

    ``seen`` maps event id → [received time (ms), source partition, source offset] of the
    first record of each event. A record whose event id was seen at *another* offset is a
    duplicate; at the *same* offset it is a replay after a restart and is forwarded again
    (its first forward may not have reached Kafka before the crash). ``bot_state`` holds
    the behavioural rules' counters. In the agent both are
    Faust tables, so they survive restarts and move with their partitions; expiry works per
    partition on stream time (received times), so a replay expires exactly the same way.
    """

    def __init__(
        self,
        settings: Settings,
        serde: AvroSerde,
        seen: MutableMapping[str, list[int]],
        bot_state: MutableMapping[str, list[int]],
        metrics: AgentMetrics,
    ) -> None:
        self.serde = serde
        self.seen = seen
        self.bot_state = bot_state
        self.metrics = metrics
        # Labelled counters resolved once: label lookups are measurable per event.
        self._counted = {o: metrics.events.labels(outcome=o) for o in ("clean", "duplicate", "bot")}
        self.rules = BotRules.from_settings(settings)
        self.dedup_window_ms = int(settings.dedup_window_s * 1000)
        self.max_skew = timedelta(seconds=settings.max_clock_skew_s)
        key = settings.pseudonymisation_key
        self.ip_key = key.get_secret_value().encode() if key else None
        self.ip_policy = settings.ip_policy
        self.geo = CountryLookup(settings.geoip_database) if settings.geoip_database else None
        if self.ip_policy == "pseudonymise" and self.ip_key is None:
            raise ConfigurationError(
                "STREAMLEARN_IP_POLICY=pseudonymise needs STREAMLEARN_PSEUDONYMISATION_KEY"
            )

    def process(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> Processed:
        try:
            event = self.serde.decode(value, topic=topic, partition=partition, offset=offset)
        except DecodeError as exc:
            return self._reject(Rejection(exc.reason, str(exc), exc.schema_id))
        problem = self._invalid_field(event)
        if problem is not None:
            return self._reject(Rejection("invalid_field", problem, self.serde.schema_id))

        event_id = str(event["event_id"])
        received_ms = _millis(event["received_ts"])
        first = self.seen.get(event_id)
        if first is not None and (first[1], first[2]) != (partition, offset):
            self._counted["duplicate"].inc()
            return Processed("duplicate")
        self.seen[event_id] = [received_ms, partition, offset]

        agent = analyse_user_agent(event["user_agent"])
        rule = bot_rule(
            self.rules, self.bot_state, partition, event["user_id"], event["ip"], received_ms, agent
        )
        if rule is not None:
            self._counted["bot"].inc()
            self.metrics.bots.labels(rule=rule).inc()
            return Processed("bot", bot_rule=rule)

        self._counted["clean"].inc()
        return Processed("clean", clean=self._clean(event, agent, partition, offset))

    def _reject(self, rejection: Rejection) -> Processed:
        self.metrics.events.labels(outcome="rejected").inc()
        self.metrics.rejected.labels(agent=AGENT, reason=rejection.reason).inc()
        return Processed("rejected", rejection=rejection)

    @staticmethod
    def _invalid_field(event: dict[str, Any]) -> str | None:
        for field in ("user_id", "event_type", "app_version"):
            if not str(event[field]).strip():
                return f"field {field} is empty"
        return None

    def _clean(
        self, event: dict[str, Any], agent: UserAgentInfo, partition: int, offset: int
    ) -> dict[str, Any]:
        client_ts, received_ts = event["client_ts"], event["received_ts"]
        plausible = abs(client_ts - received_ts) <= self.max_skew
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

    def expire(self, partition: int, now_ms: int) -> int:
        """Forget one partition's event ids older than the dedup window and stale counters."""
        horizon = now_ms - self.dedup_window_ms
        old = [
            event_id
            for event_id, (seen_ms, seen_partition, _) in list(self.seen.items())
            if seen_partition == partition and seen_ms < horizon
        ]
        for event_id in old:
            del self.seen[event_id]
        return len(old) + expire_bot_state(self.bot_state, self.rules, partition, now_ms)
