"""Sessions against an independent offline computation, plus lateness and timers."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents.metrics import AgentMetrics
from streamlearn.agents.sessions import Sessionizer
from streamlearn.settings import Settings
from tests.support import reference_sessions, session_tuple

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


def feed(sessionizer: Sessionizer, event: dict[str, Any], partition: int, now_ms: int) -> list[Any]:
    """Process one event the way the agent does: emit, then commit the state."""
    step = sessionizer.process(event, partition, now_ms)
    sessionizer.commit(step)
    return step.emitted


def sweep(sessionizer: Sessionizer, now_ms: int) -> list[Any]:
    emitted = []
    for step in sessionizer.sweep(now_ms):
        sessionizer.commit(step)
        emitted += step.emitted
    return emitted


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
        emitted += feed(sessionizer, event, 0, _ms(arrival))
    last = arrivals[-1][0]
    emitted += sweep(sessionizer, _ms(last + timedelta(hours=6)))
    assert not [s for s in emitted if s["is_correction"]]
    assert {session_tuple(s) for s in emitted} == reference_sessions(
        [e for _, e in arrivals], GAP_S
    )
    assert len(emitted) == len({s["session_id"] for s in emitted}), "each session emitted once"
    assert sessionizer.users == {}, "closed sessions are forgotten: memory stays bounded"


def test_session_closes_on_a_timer_without_further_events() -> None:
    sessionizer = _sessionizer(session_idle_s=10)
    start = T0
    assert feed(sessionizer, _event("a", start), 0, _ms(start)) == []
    # Nothing else arrives; wall time moves on past gap + lateness.
    assert sweep(sessionizer, _ms(start + timedelta(seconds=5))) == []
    closed = sweep(sessionizer, _ms(start + timedelta(seconds=GAP_S + LATENESS_S + 1)))
    assert [s["event_count"] for s in closed] == [1]


def test_late_event_corrects_an_emitted_session() -> None:
    sessionizer = _sessionizer()
    first = _event("a", T0, "/a")
    feed(sessionizer, first, 0, _ms(T0))
    # Another user's event much later moves the partition's watermark past the session.
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    assert feed(sessionizer, _event("b", later), 0, _ms(later)) == []
    closed = sweep(sessionizer, _ms(later))
    assert [(s["user_id"], s["event_count"], s["is_correction"]) for s in closed] == [
        ("a", 1, False)
    ]
    late = _event("a", T0 + timedelta(seconds=60), "/late")
    corrected = feed(sessionizer, late, 0, _ms(later))
    assert len(corrected) == 1
    assert corrected[0]["session_id"] == closed[0]["session_id"]
    assert (corrected[0]["event_count"], corrected[0]["late_events"]) == (2, 1)
    assert corrected[0]["is_correction"] is True
    assert corrected[0]["pages"] == ["/a", "/late"]
    assert sessionizer.metrics.value(sessionizer.metrics.late_events, handling="correction") == 1


def test_late_event_is_dropped_and_counted_under_drop_policy() -> None:
    sessionizer = _sessionizer(session_late_policy="drop")
    feed(sessionizer, _event("a", T0), 0, _ms(T0))
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    feed(sessionizer, _event("b", later), 0, _ms(later))
    assert len(sweep(sessionizer, _ms(later))) == 1
    assert feed(sessionizer, _event("a", T0 + timedelta(seconds=5)), 0, _ms(later)) == []
    assert sessionizer.metrics.value(sessionizer.metrics.late_events, handling="dropped") == 1


def test_an_event_read_twice_counts_once() -> None:
    sessionizer = _sessionizer()
    event = _event("a", T0)
    feed(sessionizer, event, 0, _ms(T0))
    feed(sessionizer, event, 0, _ms(T0))
    assert sessionizer.users["a"]["open"][0]["count"] == 1
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    feed(sessionizer, _event("b", later), 0, _ms(later))
    [closed] = sweep(sessionizer, _ms(later))
    # A replay after the session was emitted neither re-counts nor corrects it.
    assert feed(sessionizer, event, 0, _ms(later)) == []
    assert closed["event_count"] == 1


def test_an_event_bridging_two_open_sessions_merges_them() -> None:
    sessionizer = _sessionizer(session_allowed_lateness_s=GAP_S * 3)
    feed(sessionizer, _event("a", T0), 0, _ms(T0))
    far = T0 + timedelta(seconds=GAP_S * 1.5)
    feed(sessionizer, _event("a", far), 0, _ms(far))
    assert len(sessionizer.users["a"]["open"]) == 2
    bridge = T0 + timedelta(seconds=GAP_S * 0.75)
    feed(sessionizer, _event("a", bridge), 0, _ms(far))
    [session] = sessionizer.users["a"]["open"]
    assert session["count"] == 3


@pytest.mark.parametrize("persisted", ["at-kill", "at-commit"])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_crash_and_replay_gives_the_same_sessions(seed: int, persisted: str) -> None:
    """The replay starts at the last commit; the recovered state is anywhere between the
    commit and the kill (Faust flushes changelogs before committing offsets)."""
    import copy

    rng = random.Random(seed)
    arrivals = _synthetic(seed)
    # A few events arrive far later than the allowed lateness.
    for index in rng.sample(range(len(arrivals)), 5):
        arrival, event = arrivals[index]
        arrivals[index] = (arrival + timedelta(seconds=GAP_S * 2), event)
    arrivals.sort(key=lambda pair: pair[0])
    kill, replay_from = len(arrivals) // 2, len(arrivals) // 2 - 25
    users: dict[str, Any] = {}
    before = Sessionizer(
        Settings(session_gap_s=GAP_S, session_allowed_lateness_s=LATENESS_S),
        users,
        {},
        AgentMetrics(),
    )
    emitted = []
    recovered: dict[str, Any] = {}
    for index, (arrival, event) in enumerate(arrivals[:kill]):
        if index == replay_from and persisted == "at-commit":
            recovered = copy.deepcopy(users)
        emitted += feed(before, event, 0, _ms(arrival))
    if persisted == "at-kill":
        recovered = copy.deepcopy(users)
    after = Sessionizer(
        Settings(session_gap_s=GAP_S, session_allowed_lateness_s=LATENESS_S),
        recovered,
        {},
        AgentMetrics(),
    )
    for arrival, event in arrivals[replay_from:]:
        emitted += feed(after, event, 0, _ms(arrival))
    emitted += sweep(after, _ms(arrivals[-1][0] + timedelta(days=1)))
    final = {s["session_id"]: s for s in emitted}
    assert {session_tuple(s) for s in final.values()} == reference_sessions(
        [e for _, e in arrivals], GAP_S
    )


def test_after_a_restart_an_event_of_an_emitted_session_corrects_it() -> None:
    """Watermarks are rebuilt after a restart, so an old event may not look late any more;
    it still belongs to the session already emitted, not to a new one."""
    users: dict[str, Any] = {}
    before = _sessionizer()
    before.users = users
    feed(before, _event("a", T0), 0, _ms(T0))
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    feed(before, _event("b", later), 0, _ms(later))
    [closed] = sweep(before, _ms(later))

    after = _sessionizer()
    after.users = users
    corrected = feed(after, _event("a", T0 + timedelta(seconds=30)), 0, _ms(later))
    assert [(s["session_id"], s["event_count"], s["is_correction"]) for s in corrected] == [
        (closed["session_id"], 2, True)
    ]
    assert users["a"]["open"] == []
