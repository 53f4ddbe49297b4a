"""`streamlearn kafka start --secure`: SASL_SSL (SCRAM-SHA-512 over TLS) end to end.

One secure embedded broker for the module. Every kind of client streamlearn has connects
with the settings file the broker wrote: confluent-kafka (topics apply, the collector, the
archive, these tests), aiokafka (the registry, the agents' Faust runtime). A client
without TLS and SASL, or with a wrong password, gets nothing; no log line holds a password.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from streamlearn.archive import read_archive
from streamlearn.kafka_clients import confluent_config, producer_config
from streamlearn.kafka_local import answers_metadata, embedded_kafka, free_port
from streamlearn.kafka_local.secure import SecureMaterial
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings

PREFIX = "secure."
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
"""The collector's events come from a browser (urllib's own user agent is a crawler's)."""


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SecureMaterial]]:
    broker = embedded_kafka(
        Settings(), port=free_port(), data_dir=tmp_path_factory.mktemp("secure") / "kafka",
        secure=True,
    )  # fmt: skip
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    assert broker.config.secure is not None
    try:
        yield status.bootstrap, broker.config.secure
    finally:
        broker.stop()


def _environment(
    bootstrap: str, material: SecureMaterial, data_dir: Path, **extra: str
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMLEARN_")},
        "STREAMLEARN_CONFIG_FILE": str(material.client_settings_path),
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": PREFIX,
        "STREAMLEARN_DATA_DIR": str(data_dir),
        "STREAMLEARN_CONSUMER_SESSION_TIMEOUT_S": "6",
        **extra,
    }


def _settings(bootstrap: str, material: SecureMaterial, **more: Any) -> Settings:
    """Settings as a process given the broker's settings file reads them."""
    loaded = yaml.safe_load(material.client_settings_path.read_text())
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=PREFIX, **loaded, **more)


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "streamlearn", *args],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} not ready: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout=60)


def test_the_secure_broker_lets_in_only_its_users_and_keeps_its_secrets_private(
    secure_broker: tuple[str, SecureMaterial],
) -> None:
    bootstrap, material = secure_broker
    assert answers_metadata(bootstrap, 5, material.client_config())
    assert not answers_metadata(bootstrap, 3), "PLAINTEXT gets no metadata"
    wrong = {**material.client_config(), "sasl.password": "not-the-password"}
    assert not answers_metadata(bootstrap, 3, wrong), "a wrong password gets no metadata"
    unknown = {**material.client_config(), "sasl.username": "mallory"}
    assert not answers_metadata(bootstrap, 3, unknown)
    untrusted = {**material.client_config()}
    del untrusted["ssl.ca.location"]  # the system's CAs do not know ours
    assert not answers_metadata(bootstrap, 3, untrusted)
    assert stat.S_IMODE(material.directory.stat().st_mode) == 0o700
    for path in material.directory.iterdir():
        if path.name != "formatted":
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    properties = material.directory.parent / "server.properties"
    assert stat.S_IMODE(properties.stat().st_mode) == 0o600, "it holds the broker's password"


def test_every_part_works_over_sasl_ssl_and_logs_no_password(
    secure_broker: tuple[str, SecureMaterial], tmp_path: Path
) -> None:
    bootstrap, material = secure_broker
    registry_port, collector_port, archive_port = free_port(), free_port(), free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    env = _environment(bootstrap, material, tmp_path, STREAMLEARN_SCHEMA_REGISTRY_URL=registry_url)
    applied = subprocess.run(
        [sys.executable, "-m", "streamlearn", "topics", "apply"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert applied.returncode == 0, applied.stdout + applied.stderr
    parts = ("registry", "agents", "archive", "collector")
    logs = {name: tmp_path / f"{name}.log" for name in parts}
    started = []
    try:
        registry = _start(
            ["registry", "serve", "--port", str(registry_port)], env, logs["registry"]
        )
        started.append(registry)
        _wait_http(f"{registry_url}/healthz", registry, logs["registry"])
        registered = subprocess.run(
            [sys.executable, "-m", "streamlearn", "schemas", "register"],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert registered.returncode == 0, registered.stdout + registered.stderr
        agents = _start(
            ["agents", "run", "--only", "preprocess", "--group", "streamlearn-agents"],
            env,
            logs["agents"],
        )
        started.append(agents)
        archive = _start(
            ["archive", "run", "--topics", "events.clean", "--idle-close-s", "1",
             "--metrics-port", str(archive_port)],
            env, logs["archive"],
        )  # fmt: skip
        started.append(archive)
        collector = _start(
            ["collector", "serve", "--port", str(collector_port)], env, logs["collector"]
        )
        started.append(collector)
        _wait_http(f"http://127.0.0.1:{collector_port}/healthz", collector, logs["collector"])

        # Events through the collector (confluent-kafka) and straight from a producer.
        settings = _settings(bootstrap, material, schema_registry_url=registry_url)
        ids = [str(uuid.uuid4()) for _ in range(4)]
        body = json.dumps(
            [{"event_id": i, "event_type": "page_view", "user_id": f"u-{n}",
              "app_version": "web-1"} for n, i in enumerate(ids[:2])]
        ).encode()  # fmt: skip
        request = urllib.request.Request(
            f"http://127.0.0.1:{collector_port}/v1/events", data=body,
            headers={"Content-Type": "application/json", "User-Agent": FIREFOX},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 202)
        with RegistryClient(registry_url) as client:
            serde = AvroSerde.for_topic(client, PREFIX + "telemetry.events", "TelemetryEvent")
            producer = Producer(producer_config(settings))
            now = datetime.now(UTC)
            for n, event_id in enumerate(ids[2:], start=2):
                event = {
                    "event_id": event_id, "event_type": "page_view", "user_id": f"u-{n}",
                    "client_ts": now, "received_ts": now, "app_version": "web-1",
                }  # fmt: skip
                producer.produce(PREFIX + "telemetry.events", key=f"u-{n}".encode(),
                                 value=serde.encode(event))  # fmt: skip
            assert producer.flush(30) == 0

            # preprocess (aiokafka under Faust) cleans them; we read them back.
            clean = AvroSerde.for_topic(client, PREFIX + "events.clean", "CleanEvent")
            found = _read_ids(settings, "events.clean", clean, len(ids))
        assert sorted(found) == sorted(ids)

        # The archive (confluent-kafka) made them final in files (idle close after 1 s).
        deadline = time.monotonic() + 60
        archived = 0
        while archived < len(ids):
            assert time.monotonic() < deadline, f"archived {archived} of {len(ids)}"
            time.sleep(0.5)
            archived = sum(
                1 for _ in read_archive(str(tmp_path / "archive"), PREFIX + "events.clean")
            )
    finally:
        codes = {log: _stop(process) for log, process in zip(logs, started, strict=False)}
    assert all(code == 0 for code in codes.values()), codes
    for name, log in logs.items():
        text = log.read_text()
        for password in material.passwords.values():
            assert password not in text, f"{name}'s log holds a password"


def _read_ids(settings: Settings, topic: str, serde: AvroSerde, count: int) -> list[str]:
    consumer = Consumer(
        confluent_config(settings, **{"group.id": f"check-{uuid.uuid4().hex[:8]}",
                                      "enable.auto.commit": False})
    )  # fmt: skip
    name = settings.topic_prefix + topic
    found: list[str] = []
    try:
        partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        deadline = time.monotonic() + 90
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=1):
                if message.error() is None and message.value() is not None:
                    found.append(str(serde.decode(message.value())["event_id"]))
    finally:
        consumer.close()
    return found


def test_a_command_with_wrong_credentials_says_what_is_wrong(
    secure_broker: tuple[str, SecureMaterial], tmp_path: Path
) -> None:
    """Each said "Broker transport failure (is the broker running, and
    STREAMLEARN_KAFKA_BOOTSTRAP … its address?)", or librdkafka's own words, after 30 s."""
    bootstrap, material = secure_broker
    base = _environment(bootstrap, material, tmp_path)
    cases = [
        ({"STREAMLEARN_KAFKA_SASL_PASSWORD": "not-the-password-at-all"},
         "Kafka: authentication failed"),
        ({"STREAMLEARN_KAFKA_SSL_CAFILE": str(tmp_path / "missing-ca.pem")},
         "STREAMLEARN_KAFKA_SSL_CAFILE"),
        ({"STREAMLEARN_KAFKA_SASL_USERNAME": ""}, "STREAMLEARN_KAFKA_SASL_USERNAME"),
    ]  # fmt: skip
    for extra, said in cases:
        result = subprocess.run(
            [sys.executable, "-m", "streamlearn", "topics", "diff"],
            env={**base, **extra}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 1, (extra, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert said in last, (extra, last)
        assert "is the broker running" not in last, (extra, last)
        assert "not-the-password-at-all" not in result.stderr
    # A collector the brokers refuse does not start: it answered every post 503 while its
    # /healthz said ok.
    collector = subprocess.run(
        [sys.executable, "-m", "streamlearn", "collector", "serve", "--port", str(free_port())],
        env={**base, "STREAMLEARN_KAFKA_SASL_PASSWORD": "not-the-password-at-all"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert collector.returncode == 1, collector.stderr
    assert "Kafka: authentication failed" in collector.stderr.strip().splitlines()[-1]
    # Nor does a prediction worker: it opened its port after the startup wait, said ok on
    # /healthz and answered every user the fallback, its log repeating aiokafka's errors.
    worker = subprocess.run(
        [sys.executable, "-m", "streamlearn", "serve", "--port", str(free_port())],
        env={**base, "STREAMLEARN_KAFKA_SASL_PASSWORD": "not-the-password-at-all",
             "STREAMLEARN_MODEL_SIGNING_KEY": "a-signing-key-of-some-length"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert worker.returncode == 1, worker.stderr
    last = worker.stderr.strip().splitlines()[-1]
    assert "Kafka: authentication failed" in last, last
    assert "STREAMLEARN_KAFKA_SASL_PASSWORD" in last
    assert "not-the-password-at-all" not in worker.stderr
