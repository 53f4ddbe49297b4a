"""What `up` was asked to run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamlearn.simulate import TrafficConfig
from streamlearn.up.chaos import ChaosOptions


@dataclass(frozen=True)
class UpOptions:
    embedded_kafka: bool
    kafka_port: int
    data_dir: Path | None
    start_registry: bool
    registry_port: int
    collector_port: int
    serve_port: int
    dashboard_port: int = 8080
    simulate: TrafficConfig | None = None
    duration_s: float | None = None
    live: bool = False
    chaos: ChaosOptions | None = None
    secure: bool = False
    """The embedded broker in its secure mode with ACLs: each part as its own Kafka user."""
