"""Prometheus metrics of one prediction worker, in a registry of its own (one per app).

Counts made on every prediction go to a :class:`Tally` (a plain dict of ints) rather than
straight to ``prometheus_client``, whose ``inc`` takes a lock and checks its argument (about
half a microsecond, twice per request). A tally is added to its counter whenever the
registry is collected (``/metrics``), by a collector registered before every metric, so what
is rendered is always complete. The request-latency histogram is a :class:`LatencyHistogram`
for the same reason: ``prometheus_client``'s ``observe`` takes two locks and walks the
buckets (~2.5 µs per request under load); this one bisects into plain ints and renders them
at collection.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from streamlearn.process_metrics import part_registry

_le: Callable[[float], str] = floatToGoString  # untyped in prometheus_client

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class Tally:
    """Pending increments of a labelled counter: ``counts[label values] += n`` on the hot
    path, :meth:`flush` adds them to the counter."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.counts: dict[tuple[str, ...], int] = {}

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        for labels, n in counts.items():
            self.counter.labels(*labels).inc(n)


class Latency:
    """One label value's observations: counts per bucket (not cumulative) and their sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        # Prometheus buckets are "less than or equal to le": bisect_left finds that bucket.
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


class LatencyHistogram:
    """A histogram with one label, observed in plain ints and floats on the event loop and
    rendered as a Prometheus histogram (``_bucket``, ``_count``, ``_sum``) at collection."""

    def __init__(self, name: str, documentation: str, label: str, buckets: Sequence[float]):
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._children: dict[str, Latency] = {}

    def labels(self, value: str) -> Latency:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = Latency(self.bounds)
        return child

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=[self.label])]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for value, child in sorted(self._children.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), child.counts, strict=True):
                cumulative += count
                buckets.append((_le(bound), float(cumulative)))
            family.add_metric([value], buckets, child.total)
        return [family]


class _FlushTallies:
    """A collector yielding nothing: collecting it flushes the tallies. Registered first,
    so the metrics collected after it include every pending count."""

    def __init__(self, tallies: list[Tally]) -> None:
        self.tallies = tallies

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        for tally in self.tallies:
            tally.flush()
        return []


class ServingMetrics:
    """Every metric a worker exports; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = part_registry()
        r = self.registry
        self.tallies: list[Tally] = []
        r.register(_FlushTallies(self.tallies))
        self.request_seconds = LatencyHistogram(
            "streamlearn_serve_request_seconds",
            "Time spent on a predict request (parsing to rendering), by endpoint model.",
            "model",
            LATENCY_BUCKETS,
        )
        r.register(self.request_seconds)
        # No version label: a series per version, kept for good, grew /metrics by ~2,800
        # series an hour (a probe; after a day a scrape took 3.9 s on the predictions'
        # event loop). streamlearn_serve_model_version says the version; fallbacks are in
        # streamlearn_serve_degraded_predictions.
        self.predictions = Counter(
            "streamlearn_serve_predictions",
            "Predictions served, by served model and arm.",
            ["model", "arm"],
            registry=r,
        )
        self.degraded = Counter(
            "streamlearn_serve_degraded_predictions",
            "Predictions answered with the fallback, by model and reason.",
            ["model", "reason"],
            registry=r,
        )
        self.capped = Counter(
            "streamlearn_serve_capped_decisions",
            "Positive decisions replaced by the fallback decision because the cap was reached.",
            ["model"],
            registry=r,
        )
        self.cap_reached = Counter(
            "streamlearn_serve_cap_reached",
            "Windows in which a model's positive-decision cap was reached (one alert each).",
            ["model"],
            registry=r,
        )
        self.refused = Counter(
            "streamlearn_serve_refused_requests",
            "Requests refused as client mistakes, by HTTP status.",
            ["status"],
            registry=r,
        )
        self.model_age = Gauge(
            "streamlearn_serve_model_age_seconds",
            "Age of the loaded model state (now - created_ts), by model.",
            ["model"],
            registry=r,
        )
        self.model_version = Gauge(
            "streamlearn_serve_model_version", "Loaded model version, by model.", ["model"],
            registry=r,
        )  # fmt: skip
        self.snapshots_loaded = Counter(
            "streamlearn_serve_snapshots_loaded", "Snapshots verified and swapped in.", ["model"],
            registry=r,
        )  # fmt: skip
        self.snapshot_freshness = Histogram(
            "streamlearn_serve_snapshot_freshness_seconds",
            "Published to model.state → served, for snapshots published while this worker ran.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )
        self.snapshots_rejected = Counter(
            "streamlearn_serve_snapshots_rejected",
            "Snapshots refused (the previous model kept serving), by reason.",
            ["reason"],
            registry=r,
        )
        self.snapshots_skipped = Counter(
            "streamlearn_serve_snapshots_skipped",
            "Snapshots not loaded: not a served model, an older or equal version, a tombstone.",
            ["reason"],
            registry=r,
        )
        self.experiments_invalid = Counter(
            "streamlearn_serve_experiments_invalid",
            "Experiment records that could not be read or cannot route (previous one kept).",
            registry=r,
        )
        self.telemetry_sent = Counter(
            "streamlearn_serve_telemetry_delivered",
            "Telemetry records (PredictionServed, Alert) confirmed by Kafka.",
            registry=r,
        )
        self.telemetry_dropped = Counter(
            "streamlearn_serve_telemetry_dropped",
            "Telemetry records dropped instead of delaying requests, by reason.",
            ["reason"],
            registry=r,
        )
        self.telemetry_unheard = Gauge(
            "streamlearn_serve_telemetry_unheard_seconds",
            "How long telemetry records have waited with no word from a broker (0: none "
            "wait); /healthz fails once it passes STREAMLEARN_KAFKA_PRODUCER_STALL_S while a "
            "new client reaches the brokers.",
            registry=r,
        )
        self.alerts = Counter(
            "streamlearn_serve_alerts", "Alerts raised by this worker, by kind.", ["kind"],
            registry=r,
        )  # fmt: skip
        self.follower_errors = Counter(
            "streamlearn_serve_follower_errors",
            "Errors of the model.state/experiments follower (it retries).",
            registry=r,
        )
        self.follower_fetch_age = Gauge(
            "streamlearn_serve_follower_fetch_age_seconds",
            "Seconds since the broker last answered the follower's fetch of a topic (a healthy "
            "follower is answered at least every 0.5 s, records or not), by topic.",
            ["topic"],
            registry=r,
        )
        self.follower_lag = Gauge(
            "streamlearn_serve_follower_lag_records",
            "Records of a topic the follower has still to read, as of the broker's last answer, "
            "by topic.",
            ["topic"],
            registry=r,
        )
        self.served = self.tally(self.predictions)
        """``predictions`` by (model, arm), counted per prediction."""
        self.capped_by = self.tally(self.capped)
        """``capped`` by (model,): once the cap is reached most decisions are capped."""
        self.degraded_by = self.tally(self.degraded)
        """``degraded`` by (model, reason): without a model every prediction is degraded."""

    def tally(self, counter: Counter) -> Tally:
        tally = Tally(counter)
        self.tallies.append(tally)
        return tally
