"""An agent worker's probes: live while its loop beats, ready once started and not
rebalancing or recovering."""

from __future__ import annotations

import json
import os
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from streamlearn.ports import free_port
from streamlearn.runtime import health as health_module
from streamlearn.runtime.broker_probe import BrokerProbe
from streamlearn.runtime.health import WorkerHealth
from streamlearn.settings import Settings

pytestmark = pytest.mark.unit


def _health(**state: Any) -> WorkerHealth:
    app = SimpleNamespace(rebalancing=False, in_recovery=False, waiting_for=None, **state)
    return WorkerHealth(app, stale_after_s=30)  # type: ignore[arg-type]


def test_a_worker_is_live_while_its_loop_beats_and_not_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: now[0])
    health = _health()
    assert health.liveness()[0], "starting is not a reason to restart"
    health.last_beat = now[0]
    now[0] += 29
    assert health.liveness() == (True, {"status": "ok", "beat_age_s": 29})
    now[0] += 2
    alive, body = health.liveness()
    assert not alive
    assert body["status"] == "event loop stalled"


def test_a_worker_is_ready_once_started_and_not_while_rebalancing_or_recovering() -> None:
    health = _health()
    assert health.readiness() == (False, {"status": "starting"})
    health.last_beat = 1.0
    assert health.readiness()[0]
    health.app.rebalancing = True
    assert not health.readiness()[0]
    health.app.rebalancing = False
    health.app.in_recovery = True
    assert not health.readiness()[0]
    health.app.in_recovery = False
    health.app.waiting_for = "the schema registry, for writer schema id 7"
    assert health.readiness() == (
        False,
        {"status": "waiting for the schema registry, for writer schema id 7"},
    )


class _Admin:
    """An admin client whose metadata request fails while ``down`` is set."""

    def __init__(self) -> None:
        self.down = False

    def list_topics(self, timeout: float) -> object:
        if self.down:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Broker transport failure"))
        return object()


def test_a_worker_is_not_ready_while_kafka_does_not_answer_and_stays_live() -> None:
    probe = BrokerProbe(Settings())
    health = _health()
    health.probe = probe
    health.last_beat = health_module.time.monotonic()
    admin = _Admin()
    probe.ask(admin)
    assert health.readiness() == (True, {"status": "ready"})
    admin.down = True
    probe.ask(admin)
    ready, body = health.readiness()
    assert not ready
    assert body == {
        "status": "kafka unreachable",
        # The address it asked, as the operator set it (found by one: the log line and
        # /readyz said "Kafka unreachable" without it).
        "error": "Kafka unreachable: Broker transport failure (at 127.0.0.1:9092, "
        "STREAMLEARN_KAFKA_BOOTSTRAP)",
    }
    assert health.liveness()[0], "a restart would not bring the brokers back"
    admin.down = False
    probe.ask(admin)
    assert health.readiness() == (True, {"status": "ready"})


def test_the_probes_answer_over_http_naming_the_process() -> None:
    """`up` checks the pid: a port given to two parts is answered by the wrong one."""
    health = _health()
    health.last_beat = health_module.time.monotonic()
    port = free_port()
    server = health_module.serve_health(health, CollectorRegistry(), "127.0.0.1", port)
    try:
        for path in ("/readyz", "/healthz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
                body = json.loads(answer.read())
            assert body["pid"] == os.getpid(), path
            assert body["status"] in ("ready", "ok"), path
    finally:
        server.shutdown()
        server.server_close()
