"""The serde over the real broker and registry: Faust agents, evolution, poison records."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import pytest

from streamlearn.serde import AvroSerde, RegistryClient, UnknownSchemaIdError, load_schema
from streamlearn.serde.faust_codec import AvroCodec
from tests.support import ordered_producer, read_values


@pytest.fixture
def registry(schema_registry_url: str) -> Iterator[RegistryClient]:
    with RegistryClient(schema_registry_url) as client:
        yield client


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "user_id": f"u-{i % 3}",
        "client_ts": datetime(2026, 11, 30, 12, 0, i, tzinfo=UTC),
        "received_ts": datetime(2026, 11, 30, 12, 0, i, 500_000, tzinfo=UTC),
        "app_version": "web-1",
    }


async def test_faust_agent_receives_decoded_records(
    kafka_bootstrap: str, registry: RegistryClient, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    source, sink = new_topic(suffix="events"), new_topic(suffix="clean")
    events = AvroSerde.for_topic(registry, source, "TelemetryEvent")
    # An older producer, before `context` was added, writes to the same topic.
    old_schema = load_schema("TelemetryEvent")
    old_schema["fields"] = [f for f in old_schema["fields"] if f["name"] != "context"]
    old_events = AvroSerde(registry, old_schema, events.subject)

    app = faust.App(
        f"serde-{source[-8:]}",
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_replication_factor=1,
        datadir=str(tmp_path),
    )
    source_topic = app.topic(source, key_serializer="raw", value_serializer=AvroCodec(events))
    sink_topic = app.topic(sink, value_serializer="raw")

    @app.agent(source_topic)
    async def relay(stream: AsyncIterator[dict[str, Any]]) -> None:
        async for event in stream:
            await sink_topic.send(value=f"{event['user_id']}|{event['context']}".encode())

    await app.start()
    try:
        for i in range(3):
            await source_topic.send(key=b"k", value=_event(i))
        producer = ordered_producer(kafka_bootstrap)
        producer.produce(source, key=b"k", value=old_events.encode(_event(3)))
        producer.flush(30)
        received = await read_values(kafka_bootstrap, sink, 4)
    finally:
        await app.stop()
    assert sorted(received) == [b"u-0|{}", b"u-0|{}", b"u-1|{}", b"u-2|{}"]


def test_unknown_schema_id_from_the_real_registry(registry: RegistryClient) -> None:
    serde = AvroSerde(registry, "TelemetryEvent", f"t-{uuid.uuid4().hex[:8]}-value")
    data = serde.encode(_event(1))
    forged = data[:1] + (2**31 - 5).to_bytes(4, "big") + data[5:]
    with pytest.raises(UnknownSchemaIdError) as info:
        serde.decode(forged, topic="telemetry.events", partition=1, offset=99)
    assert info.value.reason == "unknown_schema_id"
    assert "telemetry.events[1]@99" in str(info.value)


def test_bytes_cross_between_confluent_serdes_and_ours(
    schema_registry_url: str, registry: RegistryClient, unique_name: Callable[..., str]
) -> None:
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    from streamlearn.serde import schema_text

    topic = unique_name("telemetry")
    context = SerializationContext(topic, MessageField.VALUE)
    ours = AvroSerde.for_topic(registry, topic, "TelemetryEvent")
    with SchemaRegistryClient({"url": schema_registry_url}) as client:
        theirs_out = AvroSerializer(client, schema_text("TelemetryEvent"))
        theirs_in = AvroDeserializer(client)
        event = _event(4)

        decoded = ours.decode(theirs_out(event, context))
        assert str(decoded["event_id"]) == event["event_id"]
        assert decoded["client_ts"] == event["client_ts"]

        back = theirs_in(ours.encode(event), context)
        assert str(back["event_id"]) == event["event_id"]
        assert back["received_ts"] == event["received_ts"]
        assert ours.schema_id == client.get_latest_version(f"{topic}-value").schema_id
