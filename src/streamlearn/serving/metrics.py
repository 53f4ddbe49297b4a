"""Prometheus metrics of one prediction worker, in a registry of its own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0,
)  # fmt: skip


class ServingMetrics:
    """Every metric a worker exports; ``registry`` is what ``/metrics`` renders."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.request_seconds = Histogram(
            "streamlearn_serve_request_seconds",
            "Time spent on a predict request (parsing to rendering), by endpoint model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "streamlearn_serve_predictions",
            "Predictions served, by served model, version (0: fallback) and arm.",
            ["model", "version", "arm"],
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
        self.alerts = Counter(
            "streamlearn_serve_alerts", "Alerts raised by this worker, by kind.", ["kind"],
            registry=r,
        )  # fmt: skip
        self.follower_errors = Counter(
            "streamlearn_serve_follower_errors",
            "Errors of the model.state/experiments follower (it retries).",
            registry=r,
        )
