"""Sessions against an independent offline computation, plus lateness and timers."""

from __future__ import annotations

import itertools
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents.metrics import AgentMetrics
from streamlearn.agents.sessions import Sessionizer
from streamlearn.settings import Settings

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
GAP_S = 1800
LATENESS_S = 300


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _event(user: str, at: datetime, url: str = "/") -> dict[str, Any]:
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # Avro timestamps are ms
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "event_ts": at,
        "url": url,
        "device_class": "desktop",
    }


def _sessionizer(**settings: Any) -> Sessionizer:
    config = {"session_gap_s": GAP_S, "session_allowed_lateness_s": LATENESS_S, **settings}
    return Sessionizer(Settings(**config), {}, {}, AgentMetrics())


def reference_sessions(events: list[dict[str, Any]], gap_s: float) -> set[tuple[Any, ...]]:
    """Offline: per user, sort by time, cut where consecutive events are ≥ gap apart."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], []).append(event)
    sessions = set()
    for user, user_events in by_user.items():
        user_events.sort(key=lambda e: e["event_ts"])
        groups: list[list[dict[str, Any]]] = [[user_events[0]]]
        for previous, event in itertools.pairwise(user_events):
            if (event["event_ts"] - previous["event_ts"]).total_seconds() >= gap_s:
                groups.append([])
            groups[-1].append(event)
        for group in groups:
            urls = {e["url"] for e in group}
            sessions.add(
                (user, group[0]["event_ts"], group[-1]["event_ts"], len(group), len(urls),
                 group[0]["event_id"], group[-1]["event_id"])
            )  # fmt: skip
    return sessions


def _as_tuple(session: dict[str, Any]) -> tuple[Any, ...]:
    return (
        session["user_id"], session["start_ts"], session["end_ts"], session["event_count"],
        session["page_count"], session["first_event_id"], session["last_event_id"],
    )  # fmt: skip


def _synthetic(seed: int, users: int = 40) -> list[tuple[datetime, dict[str, Any]]]:
    """(arrival time, event): sessions of humans, arriving out of order within the lateness."""
    rng = random.Random(seed)
    arrivals = []
    for u in range(users):
        at = T0 + timedelta(seconds=rng.uniform(0, 3600))
        for _ in range(rng.randint(1, 4)):
            for _ in range(rng.randint(1, 12)):
                at += timedelta(seconds=rng.uniform(1, 600))
                event = _event(f"user-{u}", at, url=f"/p/{rng.randint(0, 5)}")
                arrival = at + timedelta(seconds=rng.uniform(0, LATENESS_S * 0.9))
                arrivals.append((arrival, event))
            at += timedelta(seconds=rng.uniform(GAP_S, 4 * GAP_S))
    arrivals.sort(key=lambda pair: pair[0])
    return arrivals


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sessions_equal_the_offline_reference(seed: int) -> None:
    arrivals = _synthetic(seed)
    sessionizer = _sessionizer()
    emitted = []
    for arrival, event in arrivals:
        emitted += sessionizer.process(event, partition=0, now_ms=_ms(arrival))
    last = arrivals[-1][0]
    emitted += sessionizer.sweep(_ms(last + timedelta(hours=6)))
    assert not [s for s in emitted if s["is_correction"]]
    assert {_as_tuple(s) for s in emitted} == reference_sessions([e for _, e in arrivals], GAP_S)
    assert len(emitted) == len({s["session_id"] for s in emitted}), "each session emitted once"
    assert sessionizer.users == {}, "closed sessions are forgotten: memory stays bounded"


def test_session_closes_on_a_timer_without_further_events() -> None:
    sessionizer = _sessionizer(session_idle_s=10)
    start = T0
    assert sessionizer.process(_event("a", start), 0, _ms(start)) == []
    # Nothing else arrives; wall time moves on past gap + lateness.
    assert sessionizer.sweep(_ms(start + timedelta(seconds=5))) == []
    closed = sessionizer.sweep(_ms(start + timedelta(seconds=GAP_S + LATENESS_S + 1)))
    assert [s["event_count"] for s in closed] == [1]


def test_late_event_corrects_an_emitted_session() -> None:
    sessionizer = _sessionizer()
    first = _event("a", T0, "/a")
    sessionizer.process(first, 0, _ms(T0))
    # Another user's event much later moves the partition's watermark past the session.
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    assert sessionizer.process(_event("b", later), 0, _ms(later)) == []
    closed = sessionizer.sweep(_ms(later))
    assert [(s["user_id"], s["event_count"], s["is_correction"]) for s in closed] == [
        ("a", 1, False)
    ]
    late = _event("a", T0 + timedelta(seconds=60), "/late")
    corrected = sessionizer.process(late, 0, _ms(later))
    assert len(corrected) == 1
    assert corrected[0]["session_id"] == closed[0]["session_id"]
    assert (corrected[0]["event_count"], corrected[0]["late_events"]) == (2, 1)
    assert corrected[0]["is_correction"] is True
    assert corrected[0]["pages"] == ["/a", "/late"]
    assert sessionizer.metrics.value(sessionizer.metrics.late_events, handling="correction") == 1


def test_late_event_is_dropped_and_counted_under_drop_policy() -> None:
    sessionizer = _sessionizer(session_late_policy="drop")
    sessionizer.process(_event("a", T0), 0, _ms(T0))
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    sessionizer.process(_event("b", later), 0, _ms(later))
    assert len(sessionizer.sweep(_ms(later))) == 1
    assert sessionizer.process(_event("a", T0 + timedelta(seconds=5)), 0, _ms(later)) == []
    assert sessionizer.metrics.value(sessionizer.metrics.late_events, handling="dropped") == 1


def test_an_event_bridging_two_open_sessions_merges_them() -> None:
    sessionizer = _sessionizer(session_allowed_lateness_s=GAP_S * 3)
    sessionizer.process(_event("a", T0), 0, _ms(T0))
    far = T0 + timedelta(seconds=GAP_S * 1.5)
    sessionizer.process(_event("a", far), 0, _ms(far))
    assert len(sessionizer.users["a"]["open"]) == 2
    bridge = T0 + timedelta(seconds=GAP_S * 0.75)
    sessionizer.process(_event("a", bridge), 0, _ms(far))
    [session] = sessionizer.users["a"]["open"]
    assert session["count"] == 3
