"""The dashboard's own Prometheus metrics (``GET /metrics``), in a registry it owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamlearn.process_metrics import part_registry


class DashboardMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or part_registry()
        r = self.registry
        self.records = Counter(
            "streamlearn_dashboard_records",
            "Records read from the followed topics, by topic (declared name).",
            ["topic"],
            registry=r,
        )
        self.undecodable = Counter(
            "streamlearn_dashboard_undecodable_records",
            "Records of the followed topics that could not be decoded (skipped), by topic.",
            ["topic"],
            registry=r,
        )
        self.kafka_errors = Counter(
            "streamlearn_dashboard_kafka_errors",
            "Errors reading topics or end offsets (the readers retry), by reader.",
            ["reader"],
            registry=r,
        )
        self.offset_samples = Counter(
            "streamlearn_dashboard_offset_samples",
            "End-offset samples of the pipeline's topics taken.",
            registry=r,
        )
        self.scrapes = Counter(
            "streamlearn_dashboard_scrapes",
            "Scrapes of --scrape targets, by target and outcome (ok, failed).",
            ["target", "outcome"],
            registry=r,
        )
        self.sse_clients = Gauge(
            "streamlearn_dashboard_sse_clients",
            "Pages connected to /api/events now.",
            registry=r,
        )
        self.sse_refused = Counter(
            "streamlearn_dashboard_sse_refused",
            "Requests for /api/events refused (503) because the most streams were open.",
            registry=r,
        )
        self.sse_dropped = Counter(
            "streamlearn_dashboard_sse_dropped",
            "Event streams disconnected because their client took nothing for the write timeout.",
            registry=r,
        )
        self.sse_events = Counter(
            "streamlearn_dashboard_sse_events",
            "Server-sent events written, by event (state, delta, heartbeat).",
            ["event"],
            registry=r,
        )
