"""The monitor's gauges on /metrics: one series per stream, over every partition it reads."""

from __future__ import annotations

from typing import Any

from streamlearn.agents.monitor import ALERT_KINDS
from streamlearn.agents.monitor_metrics import MonitorMetrics
from streamlearn.agents.monitor_streams import ClosedWindow, StreamId
from streamlearn.runtime.metrics import AgentMetrics

PRICE = StreamId("feature", "price", model="ctr", arm="a")
LABELS = {"scope": "feature", "model": "ctr", "arm": "a", "producer": "", "feature": "price"}


def _window(psi: float, drifted: bool, stream: StreamId = PRICE) -> ClosedWindow:
    report: dict[str, Any] = {
        "statistics": {"psi": psi},
        "thresholds": {"psi": 0.2},
        "drifted": drifted,
    }
    return ClosedWindow(stream, report)


def _sample(metrics: AgentMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {**LABELS, **labels})


def test_a_drift_in_one_partition_is_not_hidden_by_the_next_partition_s_window() -> None:
    """The gauges had no partition label and held whichever partition closed a window
    last: a drift seen in 4 of 6 partitions read 0 half the time, and the chart's rules
    (`for: 2m`) restarted at each flip."""
    metrics = AgentMetrics()
    monitor = MonitorMetrics(metrics, ALERT_KINDS)
    monitor.closed(_window(0.9, True), partition=0)
    monitor.closed(_window(0.05, False), partition=1)
    assert _sample(metrics, "streamlearn_monitor_drifted") == 1.0
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") == 0.9
    assert _sample(metrics, "streamlearn_monitor_threshold", statistic="psi") == 0.2
    # Partition 0's next window is back to normal: nothing drifts any more.
    monitor.closed(_window(0.1, False), partition=0)
    assert _sample(metrics, "streamlearn_monitor_drifted") == 0.0
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") == 0.1


def test_a_partition_handed_to_another_worker_no_longer_counts_here() -> None:
    metrics = AgentMetrics()
    monitor = MonitorMetrics(metrics, ALERT_KINDS)
    monitor.closed(_window(0.9, True), partition=0)
    monitor.closed(_window(0.05, False), partition=1)
    monitor.forget(0)
    assert _sample(metrics, "streamlearn_monitor_drifted") == 0.0
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") == 0.05
    monitor.forget(1)
    assert _sample(metrics, "streamlearn_monitor_drifted") is None
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") is None


def test_a_statistic_and_its_threshold_come_from_the_same_partition() -> None:
    """Thresholds differ by window (a null rate's or a calibration's depends on its count):
    the largest statistic beside the largest threshold of another partition hid a crossing
    from the chart's `statistic > threshold` rules."""
    metrics = AgentMetrics()
    monitor = MonitorMetrics(metrics, ALERT_KINDS)
    crossed: dict[str, Any] = {"statistics": {"psi": 0.3}, "thresholds": {"psi": 0.2},
                               "drifted": True}  # fmt: skip
    loose: dict[str, Any] = {"statistics": {"psi": 0.1}, "thresholds": {"psi": 0.35},
                             "drifted": False}  # fmt: skip
    monitor.closed(ClosedWindow(PRICE, crossed), partition=0)
    monitor.closed(ClosedWindow(PRICE, loose), partition=1)
    statistic = _sample(metrics, "streamlearn_monitor_statistic", statistic="psi")
    threshold = _sample(metrics, "streamlearn_monitor_threshold", statistic="psi")
    assert (statistic, threshold) == (0.3, 0.2)


def test_a_statistic_the_newest_window_has_not_leaves_no_old_value_behind() -> None:
    """Found by a new user: a window whose values were all missing (a feature clients
    stopped sending) has a null rate but no PSI, and the PSI gauge kept the previous
    window's 0.9, over its threshold, for good: the chart's rule on it fired on a window
    long gone. The newest windows say no PSI, so there is no PSI series."""
    metrics = AgentMetrics()
    monitor = MonitorMetrics(metrics, ALERT_KINDS)
    monitor.closed(_window(0.9, True), partition=0)
    all_missing: dict[str, Any] = {
        "statistics": {"null_rate": 1.0},
        "thresholds": {"psi": 0.2, "null_rate": 0.1},
        "drifted": True,
    }
    monitor.closed(ClosedWindow(PRICE, all_missing), partition=0)
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="null_rate") == 1.0
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") is None
    assert _sample(metrics, "streamlearn_monitor_threshold", statistic="psi") == 0.2
    # Values again: the PSI is back.
    monitor.closed(_window(0.05, False), partition=0)
    assert _sample(metrics, "streamlearn_monitor_statistic", statistic="psi") == 0.05


def test_alerting_says_a_run_of_windows_over_the_threshold_not_one_window() -> None:
    """Found live (a broker stopped under `up --simulate`): the gauges hold the newest
    window until the next one closes, and the first null-rate window after the reference
    (0.2 against 0.1946) stayed through the outage; the chart's rule on `statistic >
    threshold` fired where the monitor, which alerts after windows in a row over it, raised
    nothing. `alerting` is 1 only for what crossed in enough windows in a row to alert."""
    metrics = AgentMetrics()
    monitor = MonitorMetrics(metrics, ALERT_KINDS)
    monitor.closed(_window(0.9, True), partition=0)
    assert _sample(metrics, "streamlearn_monitor_alerting", statistic="psi") == 0.0
    run: dict[str, Any] = {"statistics": {"psi": 0.9}, "thresholds": {"psi": 0.2},
                           "drifted": True}  # fmt: skip
    monitor.closed(ClosedWindow(PRICE, run, {"psi": (0.9, 0.2)}), partition=1)
    assert _sample(metrics, "streamlearn_monitor_alerting", statistic="psi") == 1.0
    # Partition 1's run ends: partition 0's single window does not make one.
    monitor.closed(_window(0.05, False), partition=1)
    assert _sample(metrics, "streamlearn_monitor_alerting", statistic="psi") == 0.0
    monitor.forget(0)
    monitor.forget(1)
    assert _sample(metrics, "streamlearn_monitor_alerting", statistic="psi") is None
