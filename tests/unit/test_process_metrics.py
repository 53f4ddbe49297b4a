"""Every part's /metrics holds its process's CPU, memory and start time (``process_*``),
which the dashboard's Processes section and its restart count read."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from streamlearn.archive.metrics import ArchiveMetrics
from streamlearn.collector.state import Collector
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import InMemoryRegistry
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.settings import Settings

MOCK_CLUSTER = {"test.mock.num.brokers": 1, "log_level": 3}


@pytest.mark.parametrize(
    "registry_of",
    [
        lambda: AgentMetrics().registry,
        lambda: ServingMetrics().registry,
        lambda: ArchiveMetrics().registry,
        lambda: DashboardMetrics().registry,
        # librdkafka's mock cluster: no broker to fail to reach (its retries were logged).
        lambda: Collector(Settings(), InMemoryRegistry(), producer_config=MOCK_CLUSTER).metrics,
    ],
    ids=["agents", "serve", "archive", "dashboard", "collector"],
)
def test_a_parts_metrics_hold_its_process(registry_of: Callable[[], CollectorRegistry]) -> None:
    """Found by a new user: the dashboard's Processes section showed no CPU, memory or
    restarts for any part (`rss_bytes: null`): no part exported `process_*`, each having a
    registry of its own (no globals) without the process collector."""
    text = generate_latest(registry_of()).decode()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_start_time_seconds"):  # fmt: skip
        assert f"\n{name} " in text, name
