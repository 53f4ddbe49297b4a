"""`replay diff` at the end of a replayed range, without a broker: live went on reading
after it (a `--to`, or records produced while the replay ran), and late events among
those records, received after the range but stamped within it, changed sessions live has
and the shadow cannot have."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.replay import diff
from streamlearn.replay.diff import diff_replay
from streamlearn.settings import ExplicitSettings

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RANGE_END = 48
"""events.clean[0] offsets 0..48 were replayed; live holds two more after them."""


def _at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


class _Sides:
    """Both namespaces' decoded records in memory, all in partition 0, each list's in
    offset order from 0."""

    def __init__(self, records: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.held = records

    def records(self, topic: str, side: str) -> list[dict[str, Any]]:
        return self.held.get((topic, side), [])

    def located(
        self, topic: str, side: str, first: int | None = None
    ) -> list[tuple[int, int, dict[str, Any]]]:
        found = [(0, offset, record) for offset, record in enumerate(self.records(topic, side))]
        return found if first is None else found[:first]


def _event(user: str, minutes: float) -> dict[str, Any]:
    return {"event_id": f"{user}@{minutes}", "user_id": user, "event_ts": _at(minutes)}


def _session(user: str, start: float, end: float, events: int) -> dict[str, Any]:
    return {
        "session_id": f"{user}:{start}", "user_id": user, "start_ts": _at(start),
        "end_ts": _at(end), "event_count": events, "merged_into": None,
    }  # fmt: skip


def test_sessions_changed_by_events_live_read_after_the_range_are_left_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: with the live settings, `replay agents --only preprocess,
    sessionise,label-join --to <30 s before the log's end>` then `replay diff` said
    "events.sessions: 135 shadow, 202 live; only live 67, changed 1": sessions of events
    the simulator's offline phones sent after the range's end, stamped minutes before it."""
    replayed = [_event(f"u{n % 6}", 5.0 * n) for n in range(RANGE_END)]  # 0..235 min
    after = [_event("u1", 102.0), _event("late", 150.0)]  # received after the range
    sessions = [_session("u0", 90.0, 120.0, 2), _session("u1", 95.0, 100.0, 2)]
    live_sessions = [
        sessions[0],
        _session("u1", 95.0, 102.0, 3),  # the late event extended it
        _session("late", 150.0, 150.0, 1),  # a late event's own session
    ]
    sides = _Sides(
        {
            ("events.clean", "shadow"): replayed,
            ("events.clean", "live"): replayed + after,
            ("events.sessions", "shadow"): sessions,
            ("events.sessions", "live"): live_sessions,
        }
    )
    monkeypatch.setattr(diff, "_Sides", lambda *arguments: sides)
    manifest = {
        "agents": ["sessionise"],
        "live_prefix": "",
        "shadow_prefix": "s1.",
        "inputs": {"events.clean": [
            {"partition": 0, "start": 0, "end": RANGE_END, "log_start": 0, "log_end": RANGE_END}
        ]},
        "settings": {"session_gap_s": 1800.0, "session_allowed_lateness_s": 60.0},
    }  # fmt: skip
    (result,) = diff_replay(ExplicitSettings(), None, manifest)  # type: ignore[arg-type]
    assert (result.only_live, result.only_shadow, result.changed) == ([], [], [])
    assert (result.shadow, result.live) == (1, 1)
    assert result.notes[-1] == (
        "left out near the range's end: sessions of 2 user(s) with events live read after "
        "it (received after the range, stamped within it)"
    )
