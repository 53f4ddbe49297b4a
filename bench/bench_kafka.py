"""The broker a benchmark runs against: STREAMLEARN_KAFKA_BOOTSTRAP, or an embedded one."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from streamlearn.kafka_local import EmbeddedKafka, embedded_kafka, free_port
from streamlearn.settings import Settings


@dataclass
class TemporaryBroker:
    """An embedded broker whose data lives only as long as it runs: every benchmark run
    left its data directory in /tmp (tens to hundreds of MB each)."""

    broker: EmbeddedKafka
    directory: Path

    def stop(self) -> None:
        """Stop the broker (SIGKILL after its timeout: it is gone either way), then remove
        its data."""
        try:
            self.broker.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def bench_broker() -> tuple[str, TemporaryBroker | None]:
    """The bootstrap address, and the embedded broker started for it (stop it when done:
    that removes its data too) or None when the environment names a cluster."""
    bootstrap = os.environ.get("STREAMLEARN_KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    directory = Path(tempfile.mkdtemp(prefix="streamlearn-bench-kafka-"))
    broker = TemporaryBroker(
        embedded_kafka(Settings(), port=free_port(), data_dir=directory / "k"), directory
    )
    try:
        started = broker.broker.start().bootstrap
    except BaseException:
        broker.stop()  # a broker that failed to start (or Ctrl-C) leaves nothing either
        raise
    assert started is not None
    return started, broker
