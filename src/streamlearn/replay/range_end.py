"""Where a replayed range ends, and what live read after it.

Live went on reading past the range's end (a ``--to``, or records produced while the
replay ran): a late event among those records, received after the range but stamped
within it, joins, extends or merges a session that live has and the shadow, which never
read that event, cannot have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamlearn.replay.range_start import moment


@dataclass(frozen=True)
class RangeEnd:
    """The end (exclusive) of each partition of a replay's events root."""

    offsets: dict[int, int]
    by_source: bool
    """The root is telemetry.events (preprocess replayed): a clean event's place in it is
    its ``source_partition`` and ``source_offset``; else its own in events.clean."""

    def after(self, partition: int, offset: int, event: Mapping[str, Any]) -> bool:
        """Whether live read clean ``event`` (at ``partition``/``offset`` of events.clean)
        from past the range's end."""
        if self.by_source:
            partition, offset = int(event["source_partition"]), int(event["source_offset"])
        end = self.offsets.get(partition)
        return end is None or offset >= end


def range_end(root: str, ranges: Iterable[Mapping[str, int]]) -> RangeEnd:
    """The :class:`RangeEnd` of a manifest's ``ranges`` of the events root ``root``."""
    ends = {int(r["partition"]): int(r["end"]) for r in ranges}
    return RangeEnd(ends, by_source=root == "telemetry.events")


def users_read_after(
    live_clean: Iterable[tuple[int, int, dict[str, Any]]], end: RangeEnd, until: datetime
) -> set[str]:
    """Users with a clean event live read past ``end`` and stamped at or before ``until``
    (the compared sessions' last end plus a session gap: a later one can touch none of
    them), from live's clean events ((partition, offset, decoded value))."""
    return {
        str(event["user_id"])
        for partition, offset, event in live_clean
        if end.after(partition, offset, event) and moment(event["event_ts"]) <= until
    }
