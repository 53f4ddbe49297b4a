"""Event time of one partition: a function of its records, moved by the wall clock only
while the stream is live and quiet.

Results on event time (sessions, labels) must depend on the log alone: the same records,
read at any speed, after any pause, give the same outputs. So a partition's event time is
the newest event time its records carried, nothing else, and it is part of the step's
state (a restarted worker resumes it from the changelog, not from whatever records it
happens to re-read).

One exception, so a quiet *live* stream still closes its sessions and label horizons: if
the partition's last batch was read no more than ``live_lag_ms`` after the newest event
time it carried (the stream is at the head of the log, not replaying history) and nothing
arrived for ``idle_ms``, a timer advances event time from the newest record's at the
wall clock's rate. It never jumps to the wall clock, and never moves while history is
read: a backfill of records hours old is not live however long it pauses, so its results
do not depend on timing. The advance is stored like the records' event time: what a timer
closed stays closed, and later records are judged late or not against it.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

LIVE_LAG_MS = 60_000
"""The least lag behind event time at which a partition still counts as live (a consumer
a few seconds behind its producers is at the head of the log, not replaying it)."""


def live_lag_ms(allowed_lateness_ms: int) -> int:
    """How far behind its records' event time a partition may be read and count as live:
    the allowed lateness (records that late are still expected), at least
    :data:`LIVE_LAG_MS`."""
    return max(allowed_lateness_ms, LIVE_LAG_MS)


@dataclass(frozen=True)
class EventClock:
    """The event time a step keeps under ``name`` in a partition's state mapping."""

    name: str
    idle_ms: int
    """Quiet this long (wall clock) before a live partition's event time advances."""
    live_lag_ms: int
    """Read within this much of its newest event time, a partition counts as live."""

    @property
    def _records(self) -> str:
        return self.name + ".records"

    def observe(self, state: MutableMapping[str, Any], event_ms: int) -> int:
        """Take one record's event time; returns the partition's event time after it."""
        newest = state.get(self._records)
        if newest is None or event_ms > newest:
            state[self._records] = event_ms
        current = state.get(self.name)
        if current is not None and event_ms <= current:
            return int(current)
        state[self.name] = event_ms
        return event_ms

    def time(self, state: MutableMapping[str, Any]) -> int | None:
        """The partition's event time (None before its first record)."""
        current = state.get(self.name)
        return None if current is None else int(current)

    def advance_live(
        self, state: MutableMapping[str, Any], now_ms: int, read_ms: int | None
    ) -> int | None:
        """A timer's turn at wall time ``now_ms``, the partition's last batch having been
        read at wall time ``read_ms`` (None: none since this worker took it): a live
        partition quiet for ``idle_ms`` moves to its newest record's event time plus the
        time since it was read. Returns the partition's event time."""
        newest = state.get(self._records)
        if newest is None or read_ms is None:
            return self.time(state)
        quiet_ms = now_ms - read_ms
        if read_ms - newest <= self.live_lag_ms and quiet_ms >= self.idle_ms:
            advanced = int(newest) + quiet_ms
            current = self.time(state)
            if current is None or advanced > current:
                state[self.name] = advanced
        return self.time(state)
