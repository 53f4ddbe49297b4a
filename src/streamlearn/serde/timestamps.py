"""Avro ``timestamp-millis`` values as epoch milliseconds, however they were decoded.

A step decoding its inputs plainly (``plain_inputs``) reads a timestamp as the long it is
on the wire; with logical types it is a ``datetime``. Code that computes with the number
takes either through :func:`epoch_millis`: exact integer arithmetic on the datetime (a
float ``timestamp() * 1000`` can land a millisecond low).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
DATETIME_MIN_MS = -62_135_596_800_000
"""0001-01-01T00:00Z in epoch ms: the earliest a reader decoding datetimes can read."""
DATETIME_MAX_MS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: the latest."""


def epoch_millis(value: datetime | int) -> int:
    """Epoch milliseconds of a decoded ``timestamp-millis`` (a naive datetime is UTC)."""
    if type(value) is int:
        return value
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - EPOCH) // MILLISECOND
    return int(value)


def from_epoch_millis(ms: int) -> datetime:
    """The UTC datetime of epoch milliseconds ``ms`` (what logical types decode)."""
    return EPOCH + ms * MILLISECOND
