"""The processes section and the scraped counters: what the ``--scrape`` targets say.

Per target: up or down (did it answer this tick), since when, its resident memory and CPU
use (the ``process_*`` metrics prometheus_client exports on Linux), restarts (its
``process_start_time_seconds`` changed) and, for an agent worker, its input lag (records
waiting after its positions, ``streamlearn_agent_partition_lag`` summed) and how many of
its partitions have records waiting at a position unchanged for :data:`STALL_S`: a
partition a worker stopped reading leaves every other figure normal. Summed over targets,
the counters of :data:`COUNTERS` become rates per second
(:class:`~streamlearn.dashboard.rates.RateTable`, each target a source, so one restarting
does not make a spike).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlearn.dashboard.history import DEFAULT_MAX_POINTS, DEFAULT_WINDOW_S
from streamlearn.dashboard.rates import RateTable, Source
from streamlearn.dashboard.scrape import Labels, Samples, ScrapeResult, ScrapeTarget, total


@dataclass(frozen=True)
class ScrapedCounter:
    """A series of the counters chart: a Prometheus counter, summed over targets."""

    series: str
    sample: str
    labels: Labels = ()


COUNTERS = (
    ScrapedCounter("bots", "streamlearn_preprocess_events_total", (("outcome", "bot"),)),
    ScrapedCounter(
        "duplicates", "streamlearn_preprocess_events_total", (("outcome", "duplicate"),)
    ),
    ScrapedCounter("predictions served", "streamlearn_serve_predictions_total"),
    ScrapedCounter("degraded", "streamlearn_serve_degraded_predictions_total"),
    ScrapedCounter("refused by collector", "streamlearn_collector_refused_requests_total"),
    ScrapedCounter("rejected records", "streamlearn_rejected_records_total"),
    ScrapedCounter("late events", "streamlearn_sessionise_late_events_total"),
    ScrapedCounter("snapshots rejected", "streamlearn_serve_snapshots_rejected_total"),
    ScrapedCounter("archived", "streamlearn_archive_records_total"),
)


STALL_S = 60.0
"""A partition with records waiting at the same position this long is shown as not
moving (the chart's Prometheus alert, ``StreamlearnPartitionNotRead``, waits 15 minutes
before paging anyone; a live view can say it sooner)."""

POSITION = "streamlearn_agent_partition_position"
LAG = "streamlearn_agent_partition_lag"


@dataclass
class ProcessStatus:
    target: ScrapeTarget
    up: bool | None = None
    since: float | None = None
    """When it last went up or down."""
    last_ok: float | None = None
    error: str | None = None
    samples: int = 0
    rss_bytes: float | None = None
    cpu_share: float | None = None
    """CPU seconds per second since the previous scrape (1.0: one core busy)."""
    started: float | None = None
    restarts: int = 0
    input_lag: float | None = None
    """Records waiting after the agent's positions, over its input partitions (None: the
    process exports no such metric)."""
    stalled_partitions: int | None = None
    _cpu: tuple[float, float] | None = None
    _positions: dict[Labels, tuple[float, float]] = field(default_factory=dict)
    """Per input partition's labels: its position and since when it has been there."""

    def observe(self, t: float, result: ScrapeResult) -> None:
        up = result.samples is not None
        if up != self.up:
            self.up, self.since = up, t
        if result.samples is None:
            self.error = result.error
            self.cpu_share = None
            return
        samples = result.samples
        self.error = None
        self.last_ok = t
        self.samples = len(samples)
        self.rss_bytes = total(samples, "process_resident_memory_bytes")
        started = total(samples, "process_start_time_seconds")
        if started is not None and self.started is not None and started != self.started:
            self.restarts += 1
            self._cpu = None
        self.started = started
        cpu = total(samples, "process_cpu_seconds_total")
        if cpu is not None and self._cpu is not None and t > self._cpu[0]:
            self.cpu_share = max(0.0, cpu - self._cpu[1]) / (t - self._cpu[0])
        self._cpu = None if cpu is None else (t, cpu)
        self._observe_lag(t, samples)

    def _observe_lag(self, t: float, samples: Samples) -> None:
        lags = {labels: value for (name, labels), value in samples.items() if name == LAG}
        if not lags:
            self.input_lag = self.stalled_partitions = None
            self._positions.clear()
            return
        positions: dict[Labels, tuple[float, float]] = {}
        stalled = 0
        for (name, labels), position in samples.items():
            if name != POSITION:
                continue
            seen = self._positions.get(labels)
            since = seen[1] if seen is not None and seen[0] == position else t
            positions[labels] = (position, since)
            if lags.get(labels, 0.0) > 0 and t - since >= STALL_S:
                stalled += 1
        self._positions = positions  # partitions no longer assigned are forgotten
        self.input_lag = sum(lags.values())
        self.stalled_partitions = stalled

    def state(self) -> dict[str, Any]:
        return {
            "name": self.target.name,
            "url": self.target.url,
            "up": self.up,
            "since": self.since,
            "last_ok": self.last_ok,
            "error": self.error,
            "samples": self.samples,
            "rss_bytes": self.rss_bytes,
            "cpu_share": self.cpu_share,
            "started": self.started,
            "restarts": self.restarts,
            "input_lag": self.input_lag,
            "stalled_partitions": self.stalled_partitions,
        }


class ProcessBoard:
    """Every scrape target's status, and the scraped counters as rates."""

    def __init__(
        self,
        targets: Sequence[ScrapeTarget],
        *,
        window_s: float = DEFAULT_WINDOW_S,
        max_points: int = DEFAULT_MAX_POINTS,
    ) -> None:
        self.processes = {t.name: ProcessStatus(t) for t in targets}
        self.counters = RateTable(
            [c.series for c in COUNTERS], window_s=window_s, max_points=max_points
        )

    def observe(self, t: float, results: Sequence[ScrapeResult]) -> None:
        counts: dict[Source, float] = {}
        for result in results:
            status = self.processes.get(result.target.name)
            if status is None:
                status = self.processes[result.target.name] = ProcessStatus(result.target)
            status.observe(t, result)
            if result.samples is None:
                continue
            for counter in COUNTERS:
                value = total(result.samples, counter.sample, counter.labels)
                if value is not None:
                    counts[(counter.series, result.target.name)] = value
        self.counters.sample(t, counts)

    def state(self) -> list[dict[str, Any]]:
        return [p.state() for _, p in sorted(self.processes.items())]
