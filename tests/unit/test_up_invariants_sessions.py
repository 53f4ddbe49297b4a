"""The sessions invariant over hand-made topics: what counts as equal, what is a violation.

``events.clean`` is made of plain events (epoch ms, string ids, as sessionise reads them);
``events.sessions`` of what a sessionise would have written: the rules run with or
without a wall-clock timer, then copied, corrected or tampered with.
"""

from __future__ import annotations

import uuid
from typing import Any

from streamlearn.agents.sessions import Sessioniser, SessionRules
from streamlearn.up.invariants_sessions import Located, sessions_equal

T0 = 1_796_040_000_000
GAP_MS, LATENESS_MS = 10_000, 2_000
RULES = SessionRules(
    gap_ms=GAP_MS, lateness_ms=LATENESS_MS, dedup_ms=60_000, late_policy="correction", idle_ms=5_000
)


def _event(user: str, at_s: float, url: str = "/") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "event_ts": T0 + round(at_s * 1000),
        "url": url,
        "device_class": "desktop",
    }


def _clean(events: list[dict[str, Any]]) -> list[Located]:
    return [(0, offset, event) for offset, event in enumerate(events)]


def _agent(
    events: list[dict[str, Any]], quiet_before: dict[int, float] | None = None
) -> list[dict[str, Any]]:
    """What sessionise writes for ``events`` read in this order; ``quiet_before``: index →
    seconds the live partition was quiet (at the head of the log) before that event, its
    timer moving event time on the wall clock."""
    sessioniser = Sessioniser(RULES, {}, {}, wall_clock=lambda: T0)
    written, newest = [], T0
    for i, event in enumerate(events):
        if quiet_before and i in quiet_before:
            written += sessioniser.advance_live(newest + round(quiet_before[i] * 1000), newest)
        written += sessioniser.take(event)
        newest = max(newest, event["event_ts"])
    return written


def _sessions(records: list[dict[str, Any]]) -> list[Located]:
    return [(0, offset, record) for offset, record in enumerate(records)]


def _visits() -> list[dict[str, Any]]:
    """Two users, two visits each, the second visits far enough on to close the first."""
    events = []
    for user, start in (("ann", 0.0), ("bob", 1.0)):
        events += [_event(user, start + s, f"/p/{s % 3}") for s in (0, 3, 6)]
    events += [_event("ann", 40), _event("bob", 42), _event("ann", 44)]
    return sorted(events, key=lambda e: e["event_ts"])


def test_the_agents_own_output_is_equal_and_its_open_sessions_are_counted() -> None:
    events = _visits()
    check = sessions_equal(_clean(events), _sessions(_agent(events)), RULES)
    assert check.passed, check.detail
    assert check.detail.startswith("2 sessions closed by the log: 2 equal"), check.detail
    assert "still open at the log's end 2 (0 closed by the agent's timer" in check.detail


def test_sessions_the_timer_closed_after_the_traffic_are_equal_to_the_open_ones() -> None:
    events = _visits()
    sessioniser = Sessioniser(RULES, {}, {}, wall_clock=lambda: T0)
    written = [s for e in events for s in sessioniser.take(e)]
    last = max(e["event_ts"] for e in events)
    written += sessioniser.advance_live(last + 60_000, last)  # the drain's quiet minute
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert check.passed, check.detail
    assert "still open at the log's end 2 (2 closed by the agent's timer" in check.detail


def test_identical_copies_after_a_restart_are_counted_not_judged() -> None:
    events = _visits()
    written = _agent(events)
    again = [{**s, "closed_ts": s["closed_ts"].replace(year=2030)} for s in written]
    check = sessions_equal(_clean(events), _sessions(written + again), RULES)
    assert check.passed, check.detail
    assert check.detail.endswith("identical copies re-emitted 2"), check.detail


def test_a_timer_closed_session_corrected_by_a_late_event_is_equal() -> None:
    # ann is quiet for 15 s between two events 8 s apart in event time: a live
    # partition's timer closes her session; the event read next is late and corrects it.
    events = [_event("ann", 0), _event("ann", 3), _event("ann", 11), _event("ann", 60)]
    written = _agent(events, quiet_before={2: 20})
    assert any(s["is_correction"] for s in written)
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert check.passed, check.detail
    assert "1 equal" in check.detail
    assert "corrections 1" in check.detail


def test_a_late_event_bridging_two_timer_closed_sessions_merges_them_into_the_reference() -> None:
    # ann's visits at 0 and 18 s are one session by the log (the event at 9 s, read last,
    # bridges them) but the timer closed both before it came: it corrects the first and
    # retracts the second (merged_into), which leaves the reference's one session.
    bridge = _event("ann", 9)
    events = [_event("ann", 0), _event("ann", 18), bridge, _event("ann", 90)]
    written = _agent(events, quiet_before={1: 40, 2: 40})
    assert [s["merged_into"] for s in written if s["is_correction"]] == [
        None,
        written[0]["session_id"],
    ]
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert check.passed, check.detail
    assert "1 equal" in check.detail
    assert "split 0" in check.detail


def test_a_missing_session_is_a_violation() -> None:
    events = _visits()
    written = _agent(events)
    check = sessions_equal(_clean(events), _sessions(written[1:]), RULES)
    assert not check.passed
    assert "missing 1" in check.detail


def test_a_session_with_another_count_is_a_violation() -> None:
    events = _visits()
    written = _agent(events)
    written[0] = {**written[0], "event_count": written[0]["event_count"] + 1}
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert not check.passed
    assert "missing 1" in check.detail
    assert "not in the reference 1" in check.detail


def test_a_lost_event_is_a_violation_not_a_split() -> None:
    events = _visits()
    lost = next(e for e in events if e["user_id"] == "ann")
    written = _agent([e for e in events if e is not lost])
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert not check.passed, check.detail


def test_an_event_lost_from_a_session_open_at_the_logs_end_is_a_violation() -> None:
    events = _visits()
    lost = next(e for e in events if e["user_id"] == "ann" and e["event_ts"] == T0 + 40_000)
    sessioniser = Sessioniser(RULES, {}, {}, wall_clock=lambda: T0)
    written = [s for e in events if e is not lost for s in sessioniser.take(e)]
    last = max(e["event_ts"] for e in events)
    written += sessioniser.advance_live(last + 60_000, last)  # the drain's quiet minute
    check = sessions_equal(_clean(events), _sessions(written), RULES)
    assert not check.passed, check.detail
    assert "not in the reference 1" in check.detail
