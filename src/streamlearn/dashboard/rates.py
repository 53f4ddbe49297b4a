"""Per-second rates from cumulative counts sampled over time.

The pipeline's rates come from the end offsets of its topics (one sample a second, every
partition), the other counters from the parts' Prometheus counters; both are cumulative
counts read from several sources (partitions, processes). A rate is the increase over
the sources seen in two consecutive samples divided by the time between them. A count that
went down means its source started again from zero (a restarted process, a topic created
again): its increase is then its current value, as Prometheus' ``increase()`` takes it. A
source missing from either sample (an unreachable process, a partition whose leader moved)
is left out of that one rate rather than counted as zero, so an outage never shows as a
spike when the source comes back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from streamlearn.dashboard.history import DEFAULT_MAX_POINTS, DEFAULT_WINDOW_S, Table

MIN_INTERVAL_S = 0.5
"""The shortest span a rate is taken over (samples come about once a second)."""

Source = tuple[str, str]
"""(series name, where the count comes from: a partition, a process)."""


class RateTable:
    """Rates of named series, one row per sample after the first."""

    def __init__(
        self,
        names: Sequence[str],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.names = tuple(names)
        self.table = Table(self.names, window_s=window_s, max_points=max_points)
        self.totals: dict[str, float] = {}
        """The newest cumulative count of each series (summed over its sources)."""
        self._previous: tuple[float, dict[Source, float]] | None = None

    def sample(self, t: float, counts: Mapping[Source, float]) -> dict[str, float | None]:
        """Record the cumulative ``counts`` read at time ``t``; the rates added (none for
        the first sample, or one less than :data:`MIN_INTERVAL_S` after the previous)."""
        totals: dict[str, float] = {}
        for (name, _), value in counts.items():
            totals[name] = totals.get(name, 0.0) + value
        self.totals.update(totals)
        previous = self._previous
        if previous is not None and t - previous[0] < MIN_INTERVAL_S:
            # Over a fraction of a second a count that moves in steps (a process's
            # counters, scraped) reads as a spike: the rate waits for a longer span.
            return {}
        self._previous = (t, dict(counts))
        if previous is None:
            return {}
        before_t, before = previous
        increases: dict[str, float] = {}
        for source, value in counts.items():
            old = before.get(source)
            if old is None:
                continue
            increase = value - old if value >= old else value
            increases[source[0]] = increases.get(source[0], 0.0) + increase
        dt = t - before_t
        rates: dict[str, float | None] = {
            name: (increases[name] / dt if name in increases else None) for name in self.names
        }
        self.table.add(t, rates)
        return rates

    def state(self, since: float | None = None) -> dict[str, object]:
        """The series after time ``since`` (all when None), for the page."""
        return {
            "names": list(self.names),
            "columns": self.table.since(since),
            "totals": {name: self.totals.get(name) for name in self.names},
        }
