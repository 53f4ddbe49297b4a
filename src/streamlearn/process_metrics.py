"""A part's own Prometheus registry, holding its process's CPU, memory and start time.

Each part renders a registry it owns (no globals: two parts in one test process must not
share counters), so prometheus_client's default process collector, registered on its
global registry, never reached any ``/metrics``; the dashboard's Processes section (CPU,
resident memory, restarts by ``process_start_time_seconds``) read nothing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, ProcessCollector


def part_registry() -> CollectorRegistry:
    """A new registry with the ``process_*`` metrics of this process (read at scrape)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    return registry
