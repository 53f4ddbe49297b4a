"""What sessionise holds stays bounded by its windows, however long the stream.

A soak grew sessionise steadily: each event's close time, once popped, scheduled the
user's "forget emitted sessions" time again, and each of those, once due, scheduled the
next while the user had sessions remembered: one schedule entry per event ever read.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.agents.sessions import MAX_PAGE_BYTES
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.state import encode_value
from streamlearn.settings import Settings
from tests.step_harness import StepHarness

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
GAP_S, LATENESS_S, WINDOW_S = 60, 20, 300
"""Emitted sessions are remembered 2 gaps + lateness + the window: 440 s."""


def _event(user: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "user_id": user,
        "event_ts": at,
        "url": "/",
        "device_class": "desktop",
    }


def _pending(h: StepHarness) -> int:
    """Close and forget times the step has scheduled for partition 0."""
    step = h.step
    assert isinstance(step, SessioniseStep)
    return step.scheduled(0)


def test_scheduled_times_stay_bounded_over_many_windows() -> None:
    settings = Settings(
        session_gap_s=GAP_S, session_allowed_lateness_s=LATENESS_S, dedup_window_s=WINDOW_S
    )
    h = StepHarness(SessioniseStep(settings, AgentMetrics()))
    rng = random.Random(7)
    at = T0
    pending = []
    for window in range(12):  # 12 x 1000 s of event time, a session break every ~100 s
        for _ in range(500):
            at += timedelta(seconds=2)
            user = f"user-{rng.randrange(20)}"
            h.feed(0, [_event(user, at)])
        pending.append(_pending(h))
        assert len(h.store("sessions")) <= 20, window
    # After the first windows filled, it stays where it was (500 events per 1000 s: a leak
    # would have grown by that much per window).
    assert max(pending[3:]) <= pending[2] + 100, pending


def test_a_user_of_long_urls_fits_the_changelog_record() -> None:
    """One visitor under every bot rule, 200 page views of 8,192-character URLs: the user's
    state (one changelog record, 1 MB by default) was 1.6 MB, and sessionise stopped at
    that batch after every restart. Characters of four bytes (emoji) and a user with
    several sessions remembered at once are the worst case."""
    settings = Settings(session_gap_s=GAP_S, session_allowed_lateness_s=LATENESS_S)
    h = StepHarness(SessioniseStep(settings, AgentMetrics()))
    at = T0
    for session in range(3):  # a gap between each: three sessions, the last still open
        for i in range(200):
            event = _event("reader", at)
            event["url"] = f"https://shop.example/{session}/{i:03d}/" + "\U0001f600" * 2040
            h.feed(0, [event])
            at += timedelta(seconds=1)
        at += timedelta(seconds=GAP_S + 1)
    [state] = h.store("sessions").values()
    assert len(state["open"]) + len(state["closed"]) == 3
    assert len(encode_value(state)) < 500_000  # the changelog record's bytes
    later = at + timedelta(seconds=2 * GAP_S + LATENESS_S)
    emitted = h.feed(0, [_event("other", later)])
    emitted += h.tick(0, int(later.timestamp() * 1000) + 60_000, None)
    pages = [v["pages"] for topic, _, v in emitted if topic == "events.sessions"]
    assert len(pages[-1]) == 200  # each page kept, by its first 512 bytes
    assert {len(url.encode()) for url in pages[-1]} <= set(range(509, MAX_PAGE_BYTES + 1))
