"""Bounded time series: what the dashboard remembers of a figure, and no more.

The dashboard runs for days next to a system that writes without end, so every series it
keeps is cut two ways: by age (points older than the window before the series' newest
point go) and by count (a burst cannot grow it past ``max_points``). Age is measured from
the newest point rather than from the wall clock so that a dashboard started after the
system stopped still shows the last half hour it ran, read back from the topics.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

DEFAULT_WINDOW_S = 30 * 60.0
DEFAULT_MAX_POINTS = 4000


@dataclass
class Table:
    """Rows of named columns at increasing times, bounded by age and count.

    Rows are kept sorted by time (a record of another partition may arrive late); a column
    a row does not set is ``None`` there, which uPlot draws as a gap.
    """

    columns: tuple[str, ...]
    window_s: float = DEFAULT_WINDOW_S
    max_points: int = DEFAULT_MAX_POINTS
    times: list[float] = field(default_factory=list)
    values: dict[str, list[float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for column in self.columns:
            self.values.setdefault(column, [])

    def __len__(self) -> int:
        return len(self.times)

    def add(self, t: float, row: Mapping[str, float | None], *, merge: bool = False) -> None:
        """Insert a row at time ``t`` (unknown column names are ignored). With ``merge``, a
        row already at exactly ``t`` takes the values ``row`` sets instead (two records
        about one moment, e.g. a snapshot and the metrics published with it)."""
        index = bisect.bisect_right(self.times, t)
        if merge and index > 0 and self.times[index - 1] == t:
            for column in self.columns:
                value = row.get(column)
                if value is not None:
                    self.values[column][index - 1] = value
            return
        self.times.insert(index, t)
        for column in self.columns:
            self.values[column].insert(index, row.get(column))
        self._trim()

    def add_column(self, column: str) -> None:
        """A new column, unset in the rows so far."""
        if column not in self.values:
            self.columns = (*self.columns, column)
            self.values[column] = [None] * len(self.times)

    def _trim(self) -> None:
        cut = bisect.bisect_left(self.times, self.times[-1] - self.window_s)
        cut = max(cut, len(self.times) - self.max_points)
        if cut > 0:
            del self.times[:cut]
            for column in self.columns:
                del self.values[column][:cut]

    def since(self, t: float | None) -> dict[str, list[float | None]]:
        """Columns of the rows after time ``t`` (every row when ``t`` is None), with the
        times as column ``t``."""
        start = 0 if t is None else bisect.bisect_right(self.times, t)
        out: dict[str, list[float | None]] = {"t": list(self.times[start:])}
        for column in self.columns:
            out[column] = self.values[column][start:]
        return out

    def last(self, column: str) -> float | None:
        """The newest value of ``column`` that is set."""
        for value in reversed(self.values[column]):
            if value is not None:
                return value
        return None

    def newest_time(self) -> float | None:
        return self.times[-1] if self.times else None


K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """A mapping that keeps the ``keep`` most recently touched keys (models, drift report
    keys, arms: their number is up to the system, so it is capped)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._items: OrderedDict[K, V] = OrderedDict()

    def get_or_create(self, key: K, create: Callable[[], V]) -> V:
        item = self._items.get(key)
        if item is None:
            item = create()
            self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self.keep:
            self._items.popitem(last=False)
        return item

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def items(self) -> list[tuple[K, V]]:
        return list(self._items.items())

    def values(self) -> list[V]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)
