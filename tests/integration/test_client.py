"""The app SDK and its example against the real broker and registry."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamlearn.client import TelemetryClient
from streamlearn.serde import AvroSerde, EncodeError, RegistryClient
from streamlearn.settings import Settings
from tests.support import end_offsets

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(system_settings: Settings) -> Settings:
    return system_settings


def _read_all(settings: Settings, topic: str, schema: str) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex[:8]}"}
    )
    metadata = consumer.list_topics(topic, timeout=30)
    partitions = [TopicPartition(topic, p, 0) for p in metadata.topics[topic].partitions]
    ends = end_offsets(consumer, topic, [p.partition for p in partitions])
    consumer.assign(partitions)
    records: list[tuple[bytes, dict[str, Any]]] = []
    with RegistryClient(settings.schema_registry_url) as registry:
        serde = AvroSerde.for_topic(registry, topic, schema)
        try:
            while sum(ends.values()) > len(records):
                message = consumer.poll(10)
                assert message is not None, "records missing"
                records.append((message.key(), serde.decode(message.value())))
        finally:
            consumer.close()
    return records


def test_events_and_feedback_arrive_as_registered_avro(settings: Settings) -> None:
    with TelemetryClient(settings, app_version="test-app 1.0") as telemetry:
        ids = [telemetry.event("page_view", f"u-{i}", url=f"/p/{i}") for i in range(5)]
        browser = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
        telemetry.feedback("req-1", "impression", user_id="u-1", user_agent=browser)
        telemetry.feedback("req-1", "value", value=12.5)
    assert telemetry.delivered == 7
    events = _read_all(settings, settings.topic_prefix + "telemetry.events", "TelemetryEvent")
    assert sorted(str(e["event_id"]) for _, e in events) == sorted(ids)
    assert all(key == e["user_id"].encode() for key, e in events), "keyed by user id"
    assert all(e["app_version"] == "test-app 1.0" for _, e in events)
    assert all(e["received_ts"] >= e["client_ts"] for _, e in events)
    feedback = _read_all(settings, settings.topic_prefix + "telemetry.feedback", "Feedback")
    assert [(k, f["kind"], f["value"], f["user_agent"]) for k, f in feedback] == [
        (b"req-1", "impression", None, browser),
        (b"req-1", "value", 12.5, None),
    ]


def test_invalid_event_is_refused_before_sending(settings: Settings) -> None:
    with TelemetryClient(settings, app_version="test-app 1.0") as telemetry:
        with pytest.raises(EncodeError, match="kind"):
            telemetry.feedback("req-2", "teleported")
        with pytest.raises(EncodeError, match="user_id"):
            telemetry.event("page_view", 42)  # type: ignore[arg-type]
        # What Avro takes and the readers downstream could not: preprocess would reject
        # the event, and one infinite value would spoil a regression label.
        with pytest.raises(EncodeError, match="event_id"):
            telemetry.event("page_view", "u-1", event_id="not-a-uuid")
        with pytest.raises(EncodeError, match="event_id"):
            telemetry.feedback("req-3", "click", event_id="not-a-uuid")
        for value in (float("nan"), float("inf")):
            with pytest.raises(EncodeError, match="value"):
                telemetry.feedback("req-3", "value", value=value)
    assert telemetry.delivered == 0


def test_example_script_runs(settings: Settings) -> None:
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
    }
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "send_telemetry.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "delivered 5 records" in result.stdout
    events = _read_all(settings, settings.topic_prefix + "telemetry.events", "TelemetryEvent")
    assert [e["url"] for _, e in events] == [
        "https://shop.example/",
        "https://shop.example/products/7",
        "https://shop.example/cart",
    ]
