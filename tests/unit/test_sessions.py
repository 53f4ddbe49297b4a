"""Sessions against an independent offline computation, plus lateness, timers and replays."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.settings import Settings
from tests.step_harness import StepHarness
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


def _step(**settings: Any) -> SessioniseStep:
    config = {"session_gap_s": GAP_S, "session_allowed_lateness_s": LATENESS_S, **settings}
    return SessioniseStep(Settings(**config), AgentMetrics())


def _harness(**settings: Any) -> StepHarness:
    return StepHarness(_step(**settings), now_ms=_ms(T0))


def sessions(emitted: list[Any]) -> list[dict[str, Any]]:
    return [value for topic, _, value in emitted if topic == "events.sessions"]


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


def _flush(h: StepHarness, after: datetime) -> list[dict[str, Any]]:
    """An event a day later: the watermark passes every session."""
    return sessions(h.feed(0, [_event("flush", after + timedelta(days=1))]))


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 17, 10_000])
def test_sessions_equal_the_offline_reference_however_batched(seed: int, batch: int) -> None:
    arrivals = _synthetic(seed)
    h = _harness()
    emitted = []
    events = [e for _, e in arrivals]
    for start in range(0, len(events), batch):
        emitted += sessions(h.feed(0, events[start : start + batch]))
    emitted += _flush(h, arrivals[-1][0])
    assert not [s for s in emitted if s["is_correction"]]
    assert {session_tuple(s) for s in emitted} == reference_sessions(events, GAP_S)
    assert len(emitted) == len({s["session_id"] for s in emitted}), "each session emitted once"


def test_sessions_close_when_the_records_move_event_time_not_the_wall_clock() -> None:
    h = _harness()
    h.feed(0, [_event("a", T0)])
    # A timer with the wall clock far ahead changes nothing for history: the partition
    # was read long after its event time (it is not live).
    assert h.tick(0, _ms(T0 + timedelta(days=30)), read_ms=_ms(T0 + timedelta(days=29))) == []
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S)
    closed = sessions(h.feed(0, [_event("b", later)]))
    assert [(s["user_id"], s["event_count"]) for s in closed] == [("a", 1)]


def test_a_quiet_live_partition_closes_its_sessions_on_the_wall_clock() -> None:
    h = _harness(session_idle_s=10)
    h.feed(0, [_event("a", T0)])
    read = _ms(T0) + 200  # read right after it happened: live
    assert h.tick(0, read + 5_000, read) == []
    assert h.tick(0, read + (GAP_S + LATENESS_S) * 1000 - 1_000, read) == []
    closed = sessions(h.tick(0, read + (GAP_S + LATENESS_S) * 1000, read))
    assert [s["event_count"] for s in closed] == [1]
    # The timer's advance is kept: later records are judged against what it closed.
    advanced = _ms(T0) + (GAP_S + LATENESS_S) * 1000
    assert h.store("clock") == {"event_time": advanced, "event_time.records": _ms(T0)}
    [corrected] = sessions(h.feed(0, [_event("a", T0 + timedelta(seconds=GAP_S - 60))]))
    assert corrected["is_correction"] is True


def test_late_event_corrects_an_emitted_session() -> None:
    h = _harness()
    h.feed(0, [_event("a", T0, "/a")])
    # Another user's event much later moves the partition's watermark past the session.
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    closed = sessions(h.feed(0, [_event("b", later)]))
    assert [(s["user_id"], s["event_count"], s["is_correction"]) for s in closed] == [
        ("a", 1, False)
    ]
    corrected = sessions(h.feed(0, [_event("a", T0 + timedelta(seconds=60), "/late")]))
    assert len(corrected) == 1
    assert corrected[0]["session_id"] == closed[0]["session_id"]
    assert (corrected[0]["event_count"], corrected[0]["late_events"]) == (2, 1)
    assert corrected[0]["is_correction"] is True
    assert corrected[0]["pages"] == ["/a", "/late"]
    metrics = h.step.metrics
    assert metrics.value(metrics.late_events, handling="correction") == 1


def test_late_events_merge_with_each_other() -> None:
    h = _harness()
    h.feed(0, [_event("b", T0 + timedelta(hours=1))])
    # Late, touching nothing: a session of its own, closed at once by the watermark...
    [alone] = sessions(h.feed(0, [_event("a", T0)]))
    assert (alone["event_count"], alone["late_events"]) == (1, 1)
    # ...which the next late event of that session corrects.
    [merged] = sessions(h.feed(0, [_event("a", T0 + timedelta(seconds=60))]))
    assert (merged["session_id"], merged["event_count"]) == (alone["session_id"], 2)
    assert merged["is_correction"] is True


def test_late_event_is_dropped_and_counted_under_drop_policy() -> None:
    h = _harness(session_late_policy="drop")
    h.feed(0, [_event("a", T0)])
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    assert len(sessions(h.feed(0, [_event("b", later)]))) == 1
    assert h.feed(0, [_event("a", T0 + timedelta(seconds=5))]) == []
    metrics = h.step.metrics
    assert metrics.value(metrics.late_events, handling="dropped") == 1


def test_an_event_further_behind_than_sessions_are_remembered_is_dropped_as_expired() -> None:
    h = _harness()
    h.feed(0, [_event("b", T0 + timedelta(days=2))])
    assert h.feed(0, [_event("a", T0)]) == []
    assert h.store("sessions").get("a") is None
    metrics = h.step.metrics
    assert metrics.value(metrics.late_events, handling="expired") == 1


def test_an_event_read_twice_counts_once() -> None:
    h = _harness()
    event = _event("a", T0)
    h.feed(0, [event, event])
    assert h.store("sessions")["a"]["open"][0]["count"] == 1
    later = T0 + timedelta(seconds=GAP_S + LATENESS_S + 60)
    [closed] = sessions(h.feed(0, [_event("b", later)]))
    # A replay after the session was emitted neither re-counts nor corrects it.
    assert h.feed(0, [event]) == []
    assert closed["event_count"] == 1


def test_an_event_bridging_two_open_sessions_merges_them() -> None:
    h = _harness(session_allowed_lateness_s=GAP_S * 3)
    far = T0 + timedelta(seconds=GAP_S * 1.5)
    h.feed(0, [_event("a", T0), _event("a", far)])
    assert len(h.store("sessions")["a"]["open"]) == 2
    h.feed(0, [_event("a", T0 + timedelta(seconds=GAP_S * 0.75))])
    [session] = h.store("sessions")["a"]["open"]
    assert session["count"] == 3


def test_a_late_event_bridging_two_emitted_sessions_merges_them_and_retracts_the_second() -> None:
    """Before, the late event corrected the first session only: the second stayed on
    events.sessions as a session of its own, and the user had two sessions where the
    events make one (as the offline reference says)."""
    h = _harness()
    far = T0 + timedelta(seconds=GAP_S * 1.5)
    events = [_event("a", T0, "/1"), _event("a", far, "/2")]
    # Another user's event moves the watermark past both of a's sessions.
    flush = _event("b", far + timedelta(seconds=GAP_S + LATENESS_S + 60))
    first, second = sessions(h.feed(0, events) + h.feed(0, [flush]))
    assert (first["event_count"], second["event_count"]) == (1, 1)
    bridge = _event("a", T0 + timedelta(seconds=GAP_S * 0.75), "/3")
    corrected, retracted = sessions(h.feed(0, [bridge]))
    assert corrected["session_id"] == first["session_id"]
    assert (corrected["event_count"], corrected["late_events"]) == (3, 1)
    assert corrected["is_correction"] is True
    assert corrected["merged_into"] is None
    assert corrected["pages"] == ["/1", "/3", "/2"]
    assert retracted["session_id"] == second["session_id"]
    assert retracted["is_correction"] is True
    assert retracted["merged_into"] == first["session_id"]
    # What is left (the newest record of each session id, less the retracted ones) is the
    # offline reference's one session.
    newest = {s["session_id"]: s for s in [first, second, corrected, retracted]}
    left = {session_tuple(s) for s in newest.values() if s["merged_into"] is None}
    assert left == {t for t in reference_sessions([*events, bridge], GAP_S) if t[0] == "a"}
    # The merged session is one from now on: another late event of it corrects it alone.
    [again] = sessions(h.feed(0, [_event("a", far + timedelta(seconds=60), "/4")]))
    assert (again["session_id"], again["event_count"]) == (first["session_id"], 4)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_restart_anywhere_gives_the_same_sessions(seed: int) -> None:
    """The state as written after some record, the records after it read by a new step."""
    rng = random.Random(seed)
    arrivals = _synthetic(seed)
    for index in rng.sample(range(len(arrivals)), 5):  # a few far later than the lateness
        arrival, event = arrivals[index]
        arrivals[index] = (arrival + timedelta(seconds=GAP_S * 2), event)
    arrivals.sort(key=lambda pair: pair[0])
    events = [e for _, e in arrivals]
    cut = rng.randrange(len(events))
    before = _harness()
    emitted = sessions(before.feed(0, events[:cut]))
    after = before.restart(_step())
    emitted += sessions(after.feed(0, events[cut:]))
    emitted += _flush(after, arrivals[-1][0])
    final = {s["session_id"]: s for s in emitted if s["user_id"] != "flush"}
    uninterrupted = _harness()
    reference = sessions(uninterrupted.feed(0, events)) + _flush(uninterrupted, arrivals[-1][0])
    expected = {s["session_id"]: s for s in reference if s["user_id"] != "flush"}
    assert {session_tuple(s) for s in final.values()} == {
        session_tuple(s) for s in expected.values()
    }


MIDNIGHT = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_user_who_never_pauses_gets_a_session_per_day() -> None:
    """A probe's monitor hit the site every minute for good: its one session never closed,
    so nothing of it was ever emitted. Sessions are cut at UTC midnight (event time)."""
    h = _harness()
    minutes = int((MIDNIGHT - T0).total_seconds() // 60) + 24 * 60
    events = [_event("monitor", T0 + timedelta(minutes=m)) for m in range(minutes)]
    emitted = []
    for event in events:
        if out := sessions(h.feed(0, [event])):
            emitted += [(event["event_ts"], s) for s in out]
    [(closed_by, day)] = emitted
    assert (day["start_ts"], day["end_ts"]) == (T0, MIDNIGHT - timedelta(minutes=1))
    assert day["event_count"] == (MIDNIGHT - T0).total_seconds() // 60
    # It closes as the watermark passes midnight, not a gap after its last event.
    assert closed_by == MIDNIGHT + timedelta(seconds=LATENESS_S)
    [open_] = h.store("sessions")["monitor"]["open"]
    assert open_["start"] == _ms(MIDNIGHT)


def test_a_late_event_before_midnight_joins_the_day_it_happened_in() -> None:
    h = _harness()
    h.feed(0, [_event("a", MIDNIGHT - timedelta(seconds=30))])
    h.feed(0, [_event("a", MIDNIGHT + timedelta(seconds=30))])
    h.feed(0, [_event("a", MIDNIGHT - timedelta(seconds=10))])  # late, still in lateness
    emitted = _flush(h, MIDNIGHT)
    days = sorted((s["start_ts"], s["event_count"]) for s in emitted if s["user_id"] == "a")
    assert days == [
        (MIDNIGHT - timedelta(seconds=30), 2),
        (MIDNIGHT + timedelta(seconds=30), 1),
    ]


def test_a_cut_under_a_second_is_refused() -> None:
    # 0.0001 s made the cut 0 ms: every record then raised ZeroDivisionError (a review).
    with pytest.raises(ValueError, match="session_cut_s"):
        Settings(session_cut_s=0.0001)


def test_the_cut_is_a_setting() -> None:
    h = _harness(session_cut_s=3600)
    events = [_event("a", T0 + timedelta(minutes=m)) for m in range(0, 150, 5)]
    emitted = sessions(h.feed(0, events)) + _flush(h, T0)
    starts = sorted(s["start_ts"] for s in emitted if s["user_id"] == "a")
    assert starts == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
