"""docker-compose.kafka.yml cannot run here (no Docker engine); check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml

from streamlearn.kafka_local import load_lock
from streamlearn.kafka_local.config import BrokerConfig, server_properties

REPO_ROOT = Path(__file__).resolve().parents[2]


def _kafka_service() -> dict:  # type: ignore[type-arg]
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.kafka.yml").read_text())
    return compose["services"]["kafka"]


def test_same_kafka_version_as_the_embedded_broker() -> None:
    image, _, tag = _kafka_service()["image"].partition(":")
    assert image == "apache/kafka", "use the official image"
    assert tag == load_lock().kafka_version


def test_same_port_and_single_node_settings_as_the_embedded_broker(tmp_path: Path) -> None:
    service = _kafka_service()
    assert "127.0.0.1:9092:9092" in service["ports"]
    env = service["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "PLAINTEXT_HOST://127.0.0.1:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    embedded = dict(
        line.split("=", 1) for line in server_properties(BrokerConfig(tmp_path)).splitlines()
    )
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "auto.create.topics.enable",
        "group.initial.rebalance.delay.ms",
    ):
        env_name = "KAFKA_" + key.upper().replace(".", "_")
        assert env[env_name] == embedded[key], key
