"""The monitor's figures on ``/metrics``: the last closed window of each stream (over the
partitions this worker reads), alerts raised and held back, windows closed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from streamlearn.agents.monitor_partition import MAX_FEATURE_STREAMS, MAX_PRODUCERS
from streamlearn.agents.monitor_streams import ClosedWindow
from streamlearn.runtime.metrics import AgentMetrics

Labels = tuple[str, str, str, str, str]


@dataclass(frozen=True)
class _Newest:
    """What a partition's newest closed window of a stream said."""

    statistics: dict[str, float]
    thresholds: dict[str, float]
    drifted: bool
    alerting: frozenset[str]


class MonitorMetrics:
    """The monitor's figures on ``/metrics``.

    The monitor judges each partition's windows on their own, but a gauge has no partition
    label (a series per partition would multiply them by the partitions): each stream's
    gauges say the newest window of every partition this worker reads, taken together.
    ``drifted`` is 1 while any of them crossed a threshold; a statistic and its threshold
    are those of the partition furthest over it, so ``statistic > threshold`` whenever
    any partition's is (what the chart's rules ask). Before, a gauge held whichever
    partition closed a window last, and a drift seen in some partitions flipped it
    between 0 and 1."""

    def __init__(self, metrics: AgentMetrics, alert_kinds: Mapping[str, str]) -> None:
        """``alert_kinds``: each scope the monitor judges, and the kind of its alerts."""
        labels = ["scope", "model", "arm", "producer", "feature"]
        registry = metrics.registry
        self.statistic = Gauge(
            "streamlearn_monitor_statistic",
            "A monitored statistic over the newest closed window of each partition read: the "
            "value of the one furthest over its threshold.",
            [*labels, "statistic"],
            registry=registry,
        )
        self.threshold = Gauge(
            "streamlearn_monitor_threshold",
            "The threshold of streamlearn_monitor_statistic's window (the same partition's).",
            [*labels, "statistic"],
            registry=registry,
        )
        self.drifted = Gauge(
            "streamlearn_monitor_drifted",
            "1 while the newest closed window of any partition read crossed a threshold.",
            labels,
            registry=registry,
        )
        # What the chart's data rules alert on. `drifted` and `statistic > threshold` say one
        # window, and the gauges hold it until the next window closes: a single noisy window
        # (which the monitor does not alert on) stayed over its threshold through a broker
        # outage or a quiet night, long enough for a rule's `for:` to fire.
        self.alerting = Gauge(
            "streamlearn_monitor_alerting",
            "1 while the newest closed window of any partition read is over this statistic's "
            "threshold and so were the windows before it, as many in a row as the monitor "
            "alerts after (monitor_consecutive_windows; calibration's own).",
            [*labels, "statistic"],
            registry=registry,
        )
        self.alerts = Counter(
            "streamlearn_monitor_alerts",
            "Alerts raised to monitoring.alerts, by kind.",
            ["kind"],
            registry=registry,
        )
        self.untracked = Counter(
            "streamlearn_monitor_untracked_features",
            "Feature values served that no stream tracks: their model already has "
            f"{MAX_FEATURE_STREAMS} feature streams in the partition.",
            ["model"],
            registry=registry,
        )
        self.retired_producers = Counter(
            "streamlearn_monitor_retired_producers",
            "Producers (app_version) whose streams a partition dropped to take a new one: "
            f"it already had {MAX_PRODUCERS}; the least recently heard from goes.",
            registry=registry,
        )
        self.suppressed = Counter(
            "streamlearn_monitor_alerts_suppressed",
            "Alerts held back by the cooldown, by kind.",
            ["kind"],
            registry=registry,
        )
        self._newest: dict[Labels, dict[int, _Newest]] = {}
        self.windows = Counter(
            "streamlearn_monitor_windows",
            "Windows closed, by scope.",
            ["scope"],
            registry=registry,
        )
        self._show_zeros(alert_kinds)

    def _show_zeros(self, alert_kinds: Mapping[str, str]) -> None:
        """Every scope's and kind's counter from the start, at 0: a labelled counter has no
        series until its first increment, so a monitor that never closed a window had no
        ``windows_total`` at all, and the chart's StreamlearnMonitorStuck (``sum(increase(
        ...)) == 0``) saw an empty sum, not 0, and never fired; a kind's first alert made its
        series at 1, which ``increase()`` does not count."""
        for scope in alert_kinds:
            self.windows.labels(scope)
        for kind in set(alert_kinds.values()):
            self.alerts.labels(kind)
            self.suppressed.labels(kind)

    def closed(self, window: ClosedWindow, partition: int) -> None:
        stream = window.stream
        labels = (stream.scope, stream.model or "", stream.arm or "", stream.producer or "",
                  stream.feature)  # fmt: skip
        report = window.report
        newest = self._newest.setdefault(labels, {})
        newest[partition] = _Newest(
            dict(report["statistics"]),
            dict(report["thresholds"]),
            bool(report["drifted"]),
            frozenset(window.alerting),
        )
        self._show(labels, newest)
        self.windows.labels(stream.scope).inc()

    def forget(self, partition: int) -> None:
        """``partition`` is no longer read here (handed to another worker): its windows no
        longer count in this worker's gauges."""
        self._forget(partition, lambda labels: True)

    def forget_producer(self, partition: int, producer: str) -> None:
        """``partition`` retired ``producer``'s streams: their windows no longer count."""
        self._forget(partition, lambda labels: labels[3] == producer)

    def _forget(self, partition: int, which: Callable[[Labels], bool]) -> None:
        for labels, newest in list(self._newest.items()):
            if not which(labels):
                continue
            gone = newest.pop(partition, None)
            if gone is None:
                continue
            if newest:
                self._show(labels, newest)
                continue
            del self._newest[labels]
            for name in gone.statistics:
                self.statistic.remove(*labels, name)
            for name in gone.thresholds:
                self.threshold.remove(*labels, name)
                _remove(self.alerting, labels, name)
            self.drifted.remove(*labels)

    def _show(self, labels: Labels, newest: dict[int, _Newest]) -> None:
        windows = list(newest.values())
        names = {name for window in windows for name in (*window.statistics, *window.thresholds)}
        for name in names:
            # The partition furthest over (or nearest to) its threshold speaks for both
            # figures: thresholds differ by window, and the largest statistic beside
            # another partition's threshold could hide a crossing from the rules.
            speaker = max(windows, key=lambda w: _over(w, name))
            if name in speaker.statistics:
                self.statistic.labels(*labels, name).set(speaker.statistics[name])
            else:
                # No newest window has it (its values were all missing): a value kept from
                # an older window, over its threshold, held the chart's rule firing for good.
                _remove(self.statistic, labels, name)
            if name in speaker.thresholds:
                self.threshold.labels(*labels, name).set(speaker.thresholds[name])
                running = any(name in w.alerting for w in windows)
                self.alerting.labels(*labels, name).set(1 if running else 0)
        self.drifted.labels(*labels).set(1 if any(w.drifted for w in windows) else 0)


def _remove(gauge: Gauge, labels: Labels, name: str) -> None:
    """Drop the series of ``labels`` and statistic ``name`` if there is one (some
    prometheus_client versions raise KeyError for a series that is not there)."""
    with contextlib.suppress(KeyError):
        gauge.remove(*labels, name)


def _over(window: _Newest, name: str) -> float:
    """How far the window's statistic ``name`` is over its threshold (a ratio; -inf when
    it has no such statistic)."""
    value = window.statistics.get(name)
    if value is None:
        return float("-inf")
    threshold = window.thresholds.get(name)
    return value if threshold is None else value / max(threshold, 1e-12)
