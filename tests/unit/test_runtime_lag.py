"""The per-partition position and lag a worker exports."""

from __future__ import annotations

from collections.abc import Mapping

from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from streamlearn.runtime.lag import PartitionLag
from streamlearn.topology.namespace import Namespace


class _Consumer:
    def __init__(self, lags: Mapping[TP, tuple[int, int]]) -> None:
        self.lags = lags

    def partition_lags(self) -> Mapping[TP, tuple[int, int]]:
        return self.lags


def test_positions_and_lags_are_exported_by_topology_name_and_follow_the_assignment() -> None:
    lag = PartitionLag(Namespace("try1."))
    registry = CollectorRegistry()
    registry.register(lag)
    assert b"partition=" not in generate_latest(registry), "nothing before the first refresh"
    lag.refresh(
        _Consumer({TP("try1.telemetry.events", 3): (0, 90), TP("try1.events.clean", 0): (7, 0)})
    )
    text = generate_latest(registry).decode()
    assert (
        'streamlearn_agent_partition_position{partition="3",topic="telemetry.events"} 0.0' in text
    )
    assert 'streamlearn_agent_partition_lag{partition="3",topic="telemetry.events"} 90.0' in text
    assert 'streamlearn_agent_partition_lag{partition="0",topic="events.clean"} 0.0' in text
    lag.refresh(_Consumer({TP("try1.events.clean", 0): (9, 1)}))  # partition 3 was revoked
    text = generate_latest(registry).decode()
    assert "telemetry.events" not in text
    assert 'streamlearn_agent_partition_position{partition="0",topic="events.clean"} 9.0' in text
