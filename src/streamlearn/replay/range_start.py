"""Where a replayed range starts when it starts past its partitions' first records
(``--from``, or after retention): live processing had read records before it that the
shadow did not, and ``replay diff`` leaves out what those earlier records decided live."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median_low
from typing import Any

from streamlearn.serde.timestamps import epoch_millis, from_epoch_millis

FIRST_RECORDS = 5
"""Records read from the start of each partition of a range that starts past the first
record: the median of their receipts is where the range starts there (two of them from a
host whose clock is off do not move it; more records would move it later where traffic is
sparse)."""


@dataclass(frozen=True)
class RangeStart:
    """Where a replayed range starts past its partitions' first records: live processing
    had read records before it that the shadow did not."""

    offsets: dict[int, int]
    """Partition → the range's first live offset there (only partitions it starts past
    offset 0 in)."""
    received: dict[int, datetime]
    """Partition → when the range's first records there were received: the median of the
    first :data:`FIRST_RECORDS` that decode, so that one record from a host whose clock is
    off (or one that does not decode) does not move it."""

    def where(self) -> str:
        return ",".join(f"{p}:{o}" for p, o in sorted(self.offsets.items()))


def moment(value: datetime | int) -> datetime:
    """A decoded ``timestamp-millis`` as a UTC datetime (a writer schema without the
    logical type decodes as epoch ms)."""
    return value if isinstance(value, datetime) else from_epoch_millis(epoch_millis(value))


def range_start(
    ranges: Iterable[Mapping[str, int]], firsts: Iterable[tuple[int, int, dict[str, Any]]]
) -> RangeStart | None:
    """The :class:`RangeStart` of a manifest's ``ranges`` of a topic, given the first
    records of the shadow's copy ((partition, offset, decoded value), each partition's in
    offset order); None when each partition's range starts at offset 0 (nothing came
    before it, ever) or holds nothing."""
    offsets = {int(r["partition"]): int(r["start"]) for r in ranges if r["end"] > r["start"] > 0}
    if not offsets:
        return None
    times: dict[int, list[datetime]] = {}
    for partition, _offset, value in firsts:
        if partition in offsets:
            times.setdefault(partition, []).append(moment(value["received_ts"]))
    return RangeStart(offsets, {p: median_low(at) for p, at in times.items() if at})


def leave_out_earlier_verdicts(
    shadow: dict[str, dict[str, Any]],
    live: dict[str, dict[str, Any]],
    start: RangeStart,
    recorded: dict[str, Any],
) -> tuple[int, int, float]:
    """Take out of both sides (clean events by id) those live judged with input from
    before the range: a duplicate whose first copy live made clean before it (live's clean
    record is that copy), and an event received within the bot rules' window of the
    range's start in its partition (live counted the user's and the address's earlier
    events). Returns (duplicates, events near the start, the window in seconds)."""
    window_s = max(
        float(recorded["bot_rate_window_s"]),
        int(recorded["bot_burst_length"]) * float(recorded["bot_min_interval_ms"]) / 1000,
    )
    window = timedelta(seconds=window_s)
    duplicates = {
        i for i, r in live.items()
        if r["source_offset"] < start.offsets.get(r["source_partition"], 0)
    }  # fmt: skip

    def early(record: dict[str, Any]) -> bool:
        first = start.received.get(record["source_partition"])
        return first is not None and moment(record["received_ts"]) < first + window

    near = {i for side in (shadow, live) for i, r in side.items() if early(r)} - duplicates
    for side in (shadow, live):
        for i in duplicates | near:
            side.pop(i, None)
    return len(duplicates), len(near), window_s
