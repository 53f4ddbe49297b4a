"""The broker a benchmark runs against: STREAMLEARN_KAFKA_BOOTSTRAP, or an embedded one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from streamlearn.kafka_local import EmbeddedKafka, embedded_kafka, free_port
from streamlearn.settings import Settings


def bench_broker() -> tuple[str, EmbeddedKafka | None]:
    """The bootstrap address, and the embedded broker started for it (stop it when done)
    or None when the environment names a cluster."""
    bootstrap = os.environ.get("STREAMLEARN_KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    broker = embedded_kafka(Settings(), port=free_port(), data_dir=Path(tempfile.mkdtemp()) / "k")
    started = broker.start().bootstrap
    assert started is not None
    return started, broker
