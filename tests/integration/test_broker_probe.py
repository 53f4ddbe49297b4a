"""The probe behind an agent worker's ``/readyz``, against a real broker that goes away
and comes back."""

from __future__ import annotations

import gc
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry

from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.runtime.broker_probe import BrokerProbe
from streamlearn.runtime.health import WorkerHealth, serve_health
from streamlearn.settings import Settings


def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _readyz(port: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_agent_worker_is_not_ready_while_its_broker_is_away(tmp_path: Path) -> None:
    port = free_port()
    broker = embedded_kafka(Settings(), port=port, data_dir=tmp_path / "kafka")
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    probe = BrokerProbe(
        Settings(kafka_bootstrap=status.bootstrap), every_s=0.2, timeout_s=1.0
    ).start()
    app = SimpleNamespace(rebalancing=False, in_recovery=False, waiting_for=None)
    health = WorkerHealth(app, probe=probe)  # type: ignore[arg-type]
    health.last_beat = time.monotonic()
    http_port = free_port()
    server = serve_health(health, CollectorRegistry(), "127.0.0.1", http_port)
    try:
        _until(lambda: probe.asked >= 1, 30, "the probe never asked")
        assert _readyz(http_port) == (200, {"status": "ready", "pid": os.getpid()})

        broker.stop()
        _until(lambda: probe.error is not None, 30, "the broker's absence went unseen")
        code, body = _readyz(http_port)
        assert (code, body["status"]) == (503, "kafka unreachable")
        assert str(body["error"]).startswith("Kafka unreachable: ")

        assert broker.start(timeout_s=120).bootstrap == status.bootstrap
        _until(lambda: probe.error is None, 60, "the broker's return went unseen")
        assert _readyz(http_port)[0] == 200
    finally:
        server.shutdown()
        server.server_close()
        probe.stop()
        gc.collect()
        broker.stop()
