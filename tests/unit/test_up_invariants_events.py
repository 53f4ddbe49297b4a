"""Invariant 1 of a chaos run over hand-made topic contents (no broker): every event the
collector accepted is in ``events.clean`` once, or preprocess's rules filtered it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from streamlearn.settings import Settings
from streamlearn.simulate.ledger import Ledger
from streamlearn.up.invariants import accepted_events_clean

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SENT_TWICE, SENT_ONCE = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(2))
FIGURES = {"events": {"bots": 0, "duplicates": 1}}


def _raw(event_id: str) -> dict[str, Any]:
    return {
        "event_id": event_id, "event_type": "page_view", "user_id": "u1",
        "session_hint": None, "client_ts": NOW, "received_ts": NOW,
        "url": "https://shop.example/p", "referrer": None, "user_agent": FIREFOX,
        "ip": "203.0.113.9", "app_version": "1", "properties": {}, "context": {},
    }  # fmt: skip


def _clean(event_id: str, offset: int) -> dict[str, Any]:
    return {"event_id": event_id, "source_partition": 0, "source_offset": offset}


class _Topics:
    """The decoded records ``accepted_events_clean`` reads, all in partition 0."""

    def __init__(self, clean: list[dict[str, Any]]) -> None:
        self.settings = Settings()
        # The simulator sends some events twice (its duplicates): the first is clean.
        raw = [_raw(SENT_TWICE), _raw(SENT_ONCE), _raw(SENT_TWICE)]
        self.held = {"telemetry.events": raw, "events.clean": clean}

    def located(self, logical: str, *, plain: bool = False) -> list[tuple[int, int, Any]]:
        return [(0, offset, value) for offset, value in enumerate(self.held[logical])]


def _judge(clean: list[dict[str, Any]]) -> tuple[bool, str]:
    ledger = Ledger(accepted={SENT_TWICE, SENT_ONCE})
    check = accepted_events_clean(_Topics(clean), ledger, FIGURES)  # type: ignore[arg-type]
    return check.passed, check.detail


def test_every_accepted_event_clean_once_holds() -> None:
    passed, detail = _judge([_clean(SENT_TWICE, 0), _clean(SENT_ONCE, 1)])
    assert passed, detail
    assert "2 accepted: 2 clean, 0 filtered as bots, 0 only as duplicates" in detail


def test_an_event_sent_twice_whose_clean_record_is_missing_is_lost() -> None:
    """Its second copy is a duplicate, but its first was clean: with no clean record of it,
    the event was lost. It was counted as "filtered only as a duplicate" and the invariant
    held, so a loss of any event the simulator sends twice (2% of them) went unseen."""
    passed, detail = _judge([_clean(SENT_ONCE, 1)])
    assert not passed, detail
    assert f"lost 1 (e.g. {SENT_TWICE})" in detail
    assert "0 only as duplicates" in detail


def test_an_event_sent_once_whose_clean_record_is_missing_is_lost() -> None:
    passed, detail = _judge([_clean(SENT_TWICE, 0)])
    assert not passed, detail
    assert f"lost 1 (e.g. {SENT_ONCE})" in detail
