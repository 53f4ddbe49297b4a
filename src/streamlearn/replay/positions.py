"""Where a replay starts and stops, resolved to offsets of the log as it is now.

A position is ``earliest``, ``latest``, an ISO 8601 time (the first record at or after it,
by record timestamp: Kafka's offsets-for-times) or explicit offsets ``P:O,P:O``
(partitions not listed start at the earliest offset, or end at the latest). Ranges are
half-open: ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from streamlearn.replay.exceptions import PastRetentionError, ReplayError

Position = Literal["earliest", "latest"] | datetime | Mapping[int, int]
OFFSETS_NOT_TIME = "P:O offsets; a time is given with its date, e.g. 2026-12-07T10:58"


class PartitionNotRead(ReplayError):  # noqa: N818 (says what it is, as ReplayError's others)
    """Offsets given for a partition the caller does not read (e.g. another model's)."""


class OffsetIndex(Protocol):
    """What positions are resolved against: a source of the topic's records
    (``replay.sources``: Kafka, or the archive then Kafka)."""

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]: ...

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]: ...


def parse_position(text: str) -> Position:
    """``earliest`` | ``latest`` | ``P:O,P:O`` | an ISO 8601 time (UTC when no zone)."""
    text = text.strip()
    if text in ("earliest", "latest"):
        return text  # type: ignore[return-value]
    if ":" in text and all(part.count(":") == 1 for part in text.split(",")):
        try:
            pairs = [(int(p), int(o)) for p, o in (part.split(":") for part in text.split(","))]
        except ValueError:
            pass  # perhaps a time (hh:mm)
        else:
            return _explicit_offsets(text, pairs)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        # A date's own fault (month 13) is said; anything else is no position at all.
        reason = "" if str(exc).startswith("Invalid isoformat") else f"{exc}; "
        raise ReplayError(
            f"position {text!r}: {reason}expected earliest, latest, an ISO 8601 time or "
            "P:O,P:O offsets"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _explicit_offsets(text: str, pairs: list[tuple[int, int]]) -> dict[int, int]:
    if any(partition < 0 or offset < 0 for partition, offset in pairs):
        raise ReplayError(f"position {text!r}: partitions and offsets are 0 or more")
    offsets: dict[int, int] = {}
    for partition, offset in pairs:
        if partition in offsets:
            raise ReplayError(f"position {text!r}: partition {partition} twice")
        offsets[partition] = offset
    return offsets


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition, and what the log holds of it now."""

    partition: int
    start: int
    end: int
    log_start: int
    log_end: int

    @property
    def count(self) -> int:
        return max(0, self.end - self.start)


def _or(offset: int | None, default: int) -> int:
    return default if offset is None else offset


def _offsets(
    source: OffsetIndex,
    topic: str,
    position: Position,
    watermarks: Mapping[int, tuple[int, int]],
    unlisted: Literal["earliest", "latest"],
) -> dict[int, int]:
    if position == "earliest":
        return {p: low for p, (low, _) in watermarks.items()}
    if position == "latest":
        return {p: high for p, (_, high) in watermarks.items()}
    if isinstance(position, datetime):
        ms = int(position.timestamp() * 1000)
        found = source.offsets_for_time(topic, watermarks, ms)
        return {p: _or(found.get(p), high) for p, (_, high) in watermarks.items()}
    assert isinstance(position, Mapping)
    unknown = sorted(set(position) - set(watermarks))
    if unknown:
        # `--from 10:58` is partition 10 (said) and `--from 5:30` partition 5 (taken).
        raise ReplayError(
            f"{topic} has no partitions {unknown} (it has {sorted(watermarks)}; {OFFSETS_NOT_TIME})"
        )
    default = _offsets(source, topic, unlisted, watermarks, unlisted)
    return {p: position.get(p, default[p]) for p in watermarks}


def resolve(
    source: OffsetIndex,
    topic: str,
    start: Position,
    end: Position = "latest",
    partitions: Iterable[int] | None = None,
) -> tuple[PartitionRange, ...]:
    """The ranges of Kafka topic ``topic`` from ``start`` to ``end`` (of ``partitions``,
    default all), as ``source`` holds it (``log_start``: the first offset it has),
    clamped to the log's end; a start past the end is an error."""
    watermarks = source.watermarks(topic)
    if partitions is not None:
        wanted = set(partitions)
        named = {p for position in (start, end) if isinstance(position, Mapping) for p in position}
        if named - wanted:
            raise PartitionNotRead(
                f"only {topic} partition(s) {sorted(wanted)} are read here; the offsets given "
                f"name {sorted(named - wanted)} ({OFFSETS_NOT_TIME})"
            )
        watermarks = {p: w for p, w in watermarks.items() if p in wanted}
    starts = _offsets(source, topic, start, watermarks, "earliest")
    ends = _offsets(source, topic, end, watermarks, "latest")
    ranges = []
    for p, (low, high) in sorted(watermarks.items()):
        first, last = starts[p], min(ends[p], high)
        if first > high:
            raise ReplayError(f"{topic}[{p}]: offset {first} is past the log's end {high}")
        if first > last:
            raise ReplayError(f"{topic}[{p}]: the range starts at {first}, after its end {last}")
        ranges.append(PartitionRange(p, first, last, low, high))
    return tuple(ranges)


def check_retention(topic: str, ranges: Iterable[PartitionRange]) -> None:
    """Fail, naming each partition and the earliest offset the log has, when a range
    starts before it: those records are gone from Kafka (``log_start``: Kafka's)."""
    gone = [r for r in ranges if r.count and r.start < r.log_start]
    if gone:
        detail = "; ".join(
            f"{topic}[{r.partition}] from offset {r.start}, the log starts at {r.log_start}"
            for r in gone
        )
        raise PastRetentionError(
            f"past retention: {detail}. Records before those offsets are no longer in Kafka "
            "(if `streamlearn archive run` captured them, replay with --source archive)"
        )
