"""A seeded synthetic telemetry data set with known truth, for the ingest path's tests.

Humans browse in sessions (gaps far above the session gap between them) with drifting
client clocks and network delay; some of their events are sent twice, some arrive out of
order within the allowed lateness, and a few arrive far later than it (each inside one of
its user's sessions, so the corrected sessions equal the offline truth). Crawlers announce
themselves in their user agent; burst bots send events 10 ms apart; malformed records are
garbage, truncated, or framed with an unknown schema id.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from streamlearn.serde import AvroSerde, frame

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
HUMAN_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
MOBILE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
CRAWLER_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GAP_S = 1800
LATENESS_S = 300
BURST_LENGTH = 5


def settings_for(settings: Any) -> Any:
    """``settings`` with the session gap, lateness and bot rule this data set is made for."""
    return settings.model_copy(
        update={
            "session_gap_s": GAP_S,
            "session_allowed_lateness_s": LATENESS_S,
            "bot_burst_length": BURST_LENGTH,
            "session_idle_s": 10.0,
        }
    )


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


@dataclass
class IngestDataset:
    records: list[tuple[bytes | None, bytes | None]] = field(default_factory=list)
    clean_events: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> event
    duplicates: int = 0
    bots: dict[str, str] = field(default_factory=dict)  # event id -> rule
    malformed: dict[str, int] = field(default_factory=dict)  # reason -> count
    too_late: int = 0


def build(serde: AvroSerde, seed: int = 7, humans: int = 30) -> IngestDataset:
    rng = random.Random(seed)
    data = IngestDataset()
    timed: list[tuple[datetime, bytes, dict[str, Any]]] = []

    def event(
        user: str, client: datetime, received: datetime, ua: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "event_type": "page_view",
            "user_id": user,
            "client_ts": _ms(client),
            "received_ts": _ms(received),
            "url": f"https://shop.example/p/{rng.randint(1, 8)}",
            "user_agent": ua,
            "ip": f"198.51.100.{rng.randint(1, 250)}",
            "app_version": "shop-web 4.2.0",
            **extra,
        }

    for h in range(humans):
        user = f"human-{h}"
        skew = timedelta(seconds=rng.uniform(-3, 3))
        at = T0 + timedelta(seconds=rng.uniform(0, 1800))
        ua = HUMAN_UA if h % 2 else MOBILE_UA
        for _ in range(rng.randint(1, 3)):
            session_events = []
            for _ in range(rng.randint(2, 8)):
                at += timedelta(seconds=rng.uniform(20, 400))
                delay = timedelta(seconds=rng.uniform(0.05, 1.5))
                if rng.random() < 0.15:  # offline for a while: out of order, within lateness
                    delay += timedelta(seconds=rng.uniform(30, LATENESS_S * 0.6))
                e = event(user, at + skew, at + delay, ua)
                session_events.append(e)
            if len(session_events) >= 3 and rng.random() < 0.3:
                # One event of the session arrives far later than the allowed lateness.
                late = session_events[1]
                late["received_ts"] = _ms(late["received_ts"] + timedelta(seconds=GAP_S * 2))
                data.too_late += 1
            for e in session_events:
                timed.append((e["received_ts"], user.encode(), e))
                data.clean_events[e["event_id"]] = e
                if rng.random() < 0.05:
                    again = dict(e, received_ts=_ms(e["received_ts"] + timedelta(seconds=2)))
                    timed.append((again["received_ts"], user.encode(), again))
                    data.duplicates += 1
            at += timedelta(seconds=rng.uniform(GAP_S * 1.5, GAP_S * 3))

    for c in range(3):
        at = T0 + timedelta(minutes=rng.uniform(0, 120))
        for i in range(4):
            e = event(
                f"crawler-{c}",
                at + timedelta(seconds=i * 30),
                at + timedelta(seconds=i * 30),
                CRAWLER_UA,
            )
            timed.append((e["received_ts"], e["user_id"].encode(), e))
            data.bots[e["event_id"]] = "crawler_user_agent"

    for b in range(2):
        at = T0 + timedelta(minutes=rng.uniform(0, 120))
        for i in range(BURST_LENGTH + 3):
            moment = at + timedelta(milliseconds=10 * i)
            e = event(f"burst-{b}", moment, moment, HUMAN_UA)
            timed.append((e["received_ts"], e["user_id"].encode(), e))
            if i >= BURST_LENGTH - 1:
                data.bots[e["event_id"]] = "inhuman_burst"
            else:  # indistinguishable from a human until the burst is long enough
                data.clean_events[e["event_id"]] = e

    timed.sort(key=lambda item: item[0])
    data.records = [(key, serde.encode(e)) for _, key, e in timed]
    body = serde.encode(next(iter(data.clean_events.values())))[5:]
    poison = [
        (b"garbage", b'{"event": "json is not avro"}', "bad_magic_byte"),
        (b"garbage", b"\x00\x00", "truncated_body"),
        (b"garbage", frame(987_654, body), "unknown_schema_id"),
        (b"garbage", frame(serde.schema_id, body[:7]), "truncated_body"),
    ]
    for key, value, reason in poison:
        data.records.insert(rng.randint(0, len(data.records)), (key, value))
        data.malformed[reason] = data.malformed.get(reason, 0) + 1
    return data
