"""Decoded ``timestamp-millis`` values as epoch milliseconds (serde/timestamps.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streamlearn.serde.timestamps import epoch_millis, from_epoch_millis

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("ms", [0, 1, 1_796_230_983_557, -1, 2**41 + 3])
def test_a_long_and_its_datetime_give_the_same_milliseconds(ms: int) -> None:
    moment = from_epoch_millis(ms)
    assert moment.tzinfo is UTC
    assert epoch_millis(ms) == ms
    assert epoch_millis(moment) == ms
    assert epoch_millis(moment.replace(tzinfo=None)) == ms  # naive: taken as UTC
    plus_two = moment.astimezone(timezone(timedelta(hours=2)))
    assert epoch_millis(plus_two) == ms


def test_a_datetime_between_milliseconds_rounds_down() -> None:
    moment = datetime(2026, 12, 2, 17, 0, 0, 557_999, tzinfo=UTC)
    assert epoch_millis(moment) == epoch_millis(moment.replace(microsecond=557_000))
