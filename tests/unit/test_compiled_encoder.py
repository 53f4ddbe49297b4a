"""The compiled Avro encoder (serde/compiled_encoder.py) writes fastavro's bytes, or declines."""

from __future__ import annotations

import io
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.records import StepOutputs
from streamlearn.runtime.topic_writer import TopicWriter
from streamlearn.serde import AvroSerde, EncodeError, InMemoryRegistry, load_schema
from streamlearn.serde.compiled_encoder import DeclinedRecordError, compile_encoder

pytestmark = pytest.mark.unit

SCHEMAS = sorted(p.stem for p in (Path(__file__).parents[2] / "schemas").glob("*.avsc"))
LONGS = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]
STRINGS = ["", "a", "é€😀 naïve", "x" * 63, "y" * 64, "z" * 300]


def _sample(schema: Any, rng: random.Random, depth: int = 0) -> Any:
    """A random value of ``schema`` (parsed), edge values often."""
    if isinstance(schema, list):
        return _sample(rng.choice(schema), rng, depth)
    kind = schema if isinstance(schema, str) else schema["type"]
    logical = None if isinstance(schema, str) else schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        if rng.random() < 0.2:
            return rng.choice(LONGS[:9])
        zone = rng.choice([UTC, timezone(timedelta(hours=-5, minutes=-30))])
        seconds = rng.uniform(-3e9, 4e9)
        return datetime(1970, 1, 1, tzinfo=UTC).astimezone(zone) + timedelta(
            seconds=seconds, microseconds=rng.randrange(1_000_000)
        )
    if logical == "uuid":
        value = uuid.UUID(int=rng.getrandbits(128))
        return value if rng.random() < 0.5 else str(value)
    if kind == "string":
        return rng.choice([*STRINGS, "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(9))])
    if kind == "bytes":
        return rng.randbytes(rng.choice([0, 5, 64, 200]))
    if kind == "long":
        return rng.choice([*LONGS, rng.randrange(-(2**63), 2**63)])
    if kind == "int":
        return rng.choice([0, -1, 63, -64, 64, 2**31 - 1, -(2**31), rng.randrange(-(2**31), 2**31)])
    if kind in ("double", "float"):
        return rng.choice([0.0, -1.5, 0.1, 1e300 if kind == "double" else 3.25, float("inf")])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "map":
        size = rng.choice([0, 1, 3, 70]) if depth < 2 else 1
        return {
            f"k{i}{rng.choice(STRINGS[:3])}": _sample(schema["values"], rng, depth + 1)
            for i in range(size)
        }
    if kind == "array":
        size = rng.choice([0, 1, 3, 70]) if depth < 2 else 1
        return [_sample(schema["items"], rng, depth + 1) for _ in range(size)]
    if kind == "record":
        return {f["name"]: _sample(f["type"], rng, depth + 1) for f in schema["fields"]}
    raise AssertionError(f"no sampler for {kind}")


def _fastavro(parsed: Any, record: Any) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


LEFT_TO_FASTAVRO: set[str] = set()
"""Schemas with a shape the generator declines (fastavro encodes them, as before): none since
unions of several primitive types (the features maps of ``PredictionServed`` and
``TrainingExample``) are compiled."""


def test_the_schemas_it_declines_are_the_known_ones() -> None:
    declined = {
        name
        for name in SCHEMAS
        if compile_encoder(fastavro.parse_schema(load_schema(name)), b"") is None
    }
    assert declined == LEFT_TO_FASTAVRO


@pytest.mark.parametrize("name", sorted(set(SCHEMAS) - LEFT_TO_FASTAVRO))
def test_every_record_it_encodes_has_fastavros_bytes(name: str) -> None:
    parsed = fastavro.parse_schema(load_schema(name))
    encode = compile_encoder(parsed, b"\x00head")
    assert encode is not None
    rng = random.Random(name)
    encoded = 0
    for _ in range(300):
        record = _sample(parsed, rng)
        try:
            expected = _fastavro(parsed, record)
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError):
            with pytest.raises(Exception):  # noqa: B017, PT011 - fastavro refused it too
                encode(record)
            continue
        assert encode(record) == b"\x00head" + expected
        encoded += 1
    assert encoded > 250


UNIONS = [
    ["null", "boolean", "long", "double", "string"],
    ["string", "null", "long"],
    ["double", "long"],
    ["long", "double"],
    ["null", "int", "long"],
    ["int", "string"],
    ["float", "double", "null"],
    ["float", "string"],
    ["boolean", "long"],
    ["long", "boolean"],
    ["bytes", "string"],
]


@pytest.mark.parametrize("union", UNIONS, ids=["|".join(u) for u in UNIONS])
def test_a_union_of_primitives_is_written_as_fastavro_writes_it_or_declined(
    union: list[str],
) -> None:
    """Each value goes to the branch fastavro would pick for it (the first that takes it:
    an int in a union with a double first is written as a double), or is declined (an int
    where fastavro's choice depends on its size, an int and a long, is always declined)."""
    parsed = fastavro.parse_schema(
        {"type": "record", "name": "U", "fields": [{"name": "v", "type": union}]}
    )
    encode = compile_encoder(parsed)
    assert encode is not None
    values: list[Any] = [
        None, True, False, 0, 1, -64, 2**31 - 1, 2**31, -(2**63), 2**63 - 1, 2**63, 0.0,
        -1.5, 1e300, float("inf"), "", "é€😀", b"", b"\x00\xff", 3 + 0j, [1], {"a": 1},
        ("long", 5),
    ]  # fmt: skip
    written = 0
    for value in values:
        try:
            expected = _fastavro(parsed, {"v": value})
        except (TypeError, ValueError, OverflowError, KeyError, AttributeError):
            with pytest.raises(Exception):  # noqa: B017, PT011 - fastavro refused it too
                encode({"v": value})
            continue
        try:
            got = encode({"v": value})
        except DeclinedRecordError:
            continue
        assert got == expected, value
        written += 1
    assert written >= (1 if "int" in union else 3)


def test_the_features_map_is_compiled_for_every_plain_feature_value() -> None:
    parsed = fastavro.parse_schema(load_schema("TrainingExample"))
    encode = compile_encoder(parsed)
    assert encode is not None
    record = _sample(parsed, random.Random(3))
    record["features"] = {"a": None, "b": True, "c": 7, "d": 2.5, "e": "x", "f": -(2**63)}
    assert encode(record) == _fastavro(parsed, record)


def test_the_topologys_main_output_schemas_have_encoders() -> None:
    for name in ("CleanEvent", "Session", "RejectedRecord", "TelemetryEvent", "ModelMetrics"):
        assert compile_encoder(fastavro.parse_schema(load_schema(name))) is not None, name


CLEAN = {
    "event_id": uuid.UUID(int=7), "event_type": "page_view", "user_id": "u", "session_hint": None,
    "client_ts": datetime(2026, 11, 30, tzinfo=UTC),
    "received_ts": datetime(2026, 11, 30, tzinfo=UTC),
    "event_ts": datetime(2026, 11, 30, tzinfo=UTC), "url": None, "referrer": None,
    "app_version": "1", "browser_family": None, "browser_version": None, "os_family": None,
    "device_class": "desktop", "geo_country": None, "ip_pseudonym": None, "properties": {},
    "context": {}, "source_partition": 0, "source_offset": 5,
}  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("client_ts", datetime(2026, 11, 30)),  # naive: fastavro reads it as local time
        ("source_offset", True),  # a bool is an int to fastavro
        ("source_partition", 2**31),  # out of an int's range
        ("properties", {"a": 1}),  # not a string value
        ("user_id", None),
    ],
)
def test_values_that_are_not_plainly_typed_are_declined(field: str, value: Any) -> None:
    encode = compile_encoder(fastavro.parse_schema(load_schema("CleanEvent")))
    assert encode is not None
    with pytest.raises(Exception):  # noqa: B017, PT011 - DeclinedRecordError or the type's own
        encode({**CLEAN, field: value})
    with pytest.raises(DeclinedRecordError):
        encode({**CLEAN, "source_offset": True})


def test_the_serde_writes_fastavros_bytes_and_lets_fastavro_take_what_is_declined() -> None:
    registry = InMemoryRegistry()
    serde = AvroSerde.for_topic(registry, "events.clean", "CleanEvent")
    writer = TopicWriter("events.clean", serde, 6)
    sent: list[bytes] = []
    outputs = StepOutputs({"events.clean": writer}, lambda t, p, k, v: sent.append(v),
                          "test", AgentMetrics(), lambda: 0, {})  # fmt: skip
    send = outputs.to("events.clean")
    send("u", CLEAN)
    missing = {k: v for k, v in CLEAN.items() if k != "referrer"}  # fastavro uses the default
    send("u", missing)
    # What the serde wrote before it had a compiled encoder:
    fastavro_only = AvroSerde(registry, "CleanEvent", "events.clean-value", compiled=False)
    assert serde._encoder is not None
    assert fastavro_only._encoder is None
    assert sent == [fastavro_only.encode(CLEAN), fastavro_only.encode(missing)]
    with pytest.raises(EncodeError, match="user_id"):
        send("u", {**CLEAN, "user_id": None})
