"""The serde against an in-memory registry (the real registry is in the integration tier)."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import (
    AvroSerde,
    BadMagicByteError,
    DecodeError,
    EncodeError,
    InMemoryRegistry,
    NullValueError,
    TruncatedRecordError,
    UnknownSchemaIdError,
    UnresolvableSchemaError,
    frame,
    load_schema,
    unframe,
)


def _event(**overrides: Any) -> dict[str, Any]:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "user_id": "u-1",
        "client_ts": datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        "received_ts": datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC),
        "url": "https://shop.example/p/1",
        "app_version": "web-4.2.0",
        "properties": {"product": "p-1"},
    }
    event.update(overrides)
    return event


@pytest.fixture
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


@pytest.fixture
def serde(registry: InMemoryRegistry) -> AvroSerde:
    return AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")


def test_wire_format_header() -> None:
    data = frame(258, b"body")
    assert data[:5] == b"\x00\x00\x00\x01\x02"
    schema_id, body = unframe(data)
    assert schema_id == 258
    assert bytes(body) == b"body"


def test_round_trip(serde: AvroSerde, registry: InMemoryRegistry) -> None:
    event = _event()
    data = serde.encode(event)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == serde.schema_id == 1
    assert registry.subjects == {"telemetry.events-value": [1]}
    decoded = serde.decode(data)
    assert str(decoded["event_id"]) == event["event_id"]
    assert decoded["client_ts"] == event["client_ts"]
    assert decoded["properties"] == {"product": "p-1"}
    assert decoded["session_hint"] is None
    assert decoded["context"] == {}


def test_writer_schemas_are_fetched_once_per_id(
    serde: AvroSerde, registry: InMemoryRegistry
) -> None:
    other = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")
    data = other.encode(_event())
    for _ in range(100):
        serde.decode(data)
    assert registry.fetches <= 1


def test_older_writer_is_resolved_into_the_reader_schema(registry: InMemoryRegistry) -> None:
    old_schema = load_schema("TelemetryEvent")
    old_schema["fields"] = [f for f in old_schema["fields"] if f["name"] != "context"]
    old_writer = AvroSerde(registry, old_schema, "telemetry.events-value")
    reader = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")
    decoded = reader.decode(old_writer.encode(_event()))
    assert decoded["context"] == {}, "a field added with a default is filled in for old data"
    assert old_writer.schema_id != reader.schema_id


def test_unresolvable_writer_is_a_typed_error(registry: InMemoryRegistry) -> None:
    writer_schema = copy.deepcopy(load_schema("TelemetryEvent"))
    for field in writer_schema["fields"]:
        if field["name"] == "user_id":
            field["type"] = "long"
    writer = AvroSerde(registry, writer_schema, "telemetry.events-value")
    reader = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")
    data = writer.encode(_event(user_id=7))
    with pytest.raises(UnresolvableSchemaError, match="user_id") as info:
        reader.decode(data, topic="telemetry.events", partition=2, offset=41)
    assert info.value.reason == "unresolvable_schema"
    assert str(info.value).startswith("telemetry.events[2]@41: ")


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (b"", TruncatedRecordError, "truncated_body"),
        # A tombstone: no bytes at all, not a body cut short (found by a new user).
        (None, NullValueError, "null_value"),
        (b"\x00\x00\x01", TruncatedRecordError, "truncated_body"),
        (b'{"event_id": "json, not avro"}', BadMagicByteError, "bad_magic_byte"),
        (b"\x00\x00\x00\x03\x99" + b"\x02" * 20, UnknownSchemaIdError, "unknown_schema_id"),
    ],
)
def test_poison_records_are_typed(
    serde: AvroSerde, data: bytes | None, error: type[DecodeError], reason: str
) -> None:
    serde.encode(_event())
    with pytest.raises(error) as info:
        serde.decode(data, topic="telemetry.events", partition=0, offset=7)
    assert info.value.reason == reason
    assert info.value.offset == 7


def test_truncated_and_padded_bodies_are_rejected(serde: AvroSerde) -> None:
    data = serde.encode(_event())
    with pytest.raises(TruncatedRecordError, match="ends early"):
        serde.decode(data[:-12])
    with pytest.raises(DecodeError, match="3 unexpected bytes"):
        serde.decode(data + b"\x00\x00\x00")


def test_garbage_body_is_a_decode_error(serde: AvroSerde) -> None:
    serde.encode(_event())
    with pytest.raises(DecodeError) as info:
        serde.decode(frame(serde.schema_id, b"\xff" * 64))
    assert info.value.schema_id == serde.schema_id


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"user_id": 42}, "user_id"),
        ({"client_ts": "yesterday"}, "client_ts"),
        ({"properties": {"n": 1}}, "properties"),
        ({"event_type": None}, "event_type"),
    ],
)
def test_invalid_record_names_the_field(
    serde: AvroSerde, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(EncodeError, match=field):
        serde.encode(_event(**overrides))


def test_missing_required_field_names_the_field(serde: AvroSerde) -> None:
    event = _event()
    del event["app_version"]
    with pytest.raises(EncodeError, match="app_version"):
        serde.encode(event)


def test_not_a_mapping(serde: AvroSerde) -> None:
    with pytest.raises(EncodeError, match="must be a mapping"):
        serde.encode(["not", "a", "record"])  # type: ignore[arg-type]


def test_a_decoder_without_logical_types_reads_timestamps_as_the_longs_on_the_wire() -> None:
    registry = InMemoryRegistry()
    writer = AvroSerde(registry, "TrainingExample", "examples-value")
    (example,) = ClickWorld(seed=2).training_examples(1)
    data = writer.encode(example)
    plain = AvroSerde(registry, "TrainingExample", "examples-value", logical_types=False)
    decoded, plain_decoded = writer.decode(data), plain.decode(data)
    millis = int(example["served_ts"].timestamp() * 1000)
    assert plain_decoded["served_ts"] == millis
    assert {k: v for k, v in plain_decoded.items() if not k.endswith("_ts")} == {
        k: v for k, v in decoded.items() if not k.endswith("_ts")
    }


@pytest.mark.parametrize(
    ("login", "said"),
    [(None, "none is set"), ("ops:wrong-password", "the one set is refused")],
)
def test_a_registry_that_asks_for_a_login_names_the_setting(login: str | None, said: str) -> None:
    """Found by a new user: `schemas register` without a login, or with a wrong one, said
    "HTTP 401 this request needs HTTP basic auth as a registry writer" and named no setting
    (Kafka's refusals name theirs)."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from streamlearn.serde import RegistryClient, RegistryUnavailableError

    class Refusing:
        def lookup_schema(self, *args: object) -> None:
            raise SchemaRegistryError(404, 40401, "no such subject")

        def register_schema(self, *args: object) -> None:
            raise SchemaRegistryError(401, 401, "this request needs HTTP basic auth")

    client = RegistryClient("http://r:8081", client=Refusing(), logged_in=login is not None)  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError) as refused:
        client.register("t-value", '{"type": "string"}')
    assert (
        f"check STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH, a registry writer's user:password ({said})"
        in str(refused.value)
    )
