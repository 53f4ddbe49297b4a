"""The monitor's figures on ``/metrics``: the last closed window of each stream, alerts
raised and held back, windows closed."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from streamlearn.agents.monitor_streams import ClosedWindow
from streamlearn.runtime.metrics import AgentMetrics


class MonitorMetrics:
    """The monitor's figures on ``/metrics`` (the last closed window of each stream)."""

    def __init__(self, metrics: AgentMetrics) -> None:
        labels = ["scope", "model", "arm", "producer", "feature"]
        registry = metrics.registry
        self.statistic = Gauge(
            "streamlearn_monitor_statistic",
            "A monitored statistic over the last closed window.",
            [*labels, "statistic"],
            registry=registry,
        )
        self.threshold = Gauge(
            "streamlearn_monitor_threshold",
            "The threshold of a monitored statistic.",
            [*labels, "statistic"],
            registry=registry,
        )
        self.drifted = Gauge(
            "streamlearn_monitor_drifted",
            "1 when the last closed window crossed a threshold.",
            labels,
            registry=registry,
        )
        self.alerts = Counter(
            "streamlearn_monitor_alerts",
            "Alerts raised to monitoring.alerts, by kind.",
            ["kind"],
            registry=registry,
        )
        self.suppressed = Counter(
            "streamlearn_monitor_alerts_suppressed",
            "Alerts held back by the cooldown, by kind.",
            ["kind"],
            registry=registry,
        )
        self.windows = Counter(
            "streamlearn_monitor_windows",
            "Windows closed, by scope.",
            ["scope"],
            registry=registry,
        )

    def closed(self, window: ClosedWindow) -> None:
        stream = window.stream
        labels = (stream.scope, stream.model or "", stream.arm or "", stream.producer or "",
                  stream.feature)  # fmt: skip
        report = window.report
        for name, value in report["statistics"].items():
            self.statistic.labels(*labels, name).set(value)
        for name, value in report["thresholds"].items():
            self.threshold.labels(*labels, name).set(value)
        self.drifted.labels(*labels).set(1 if report["drifted"] else 0)
        self.windows.labels(stream.scope).inc()
