"""Avro writer schemas as Parquet columns, and values through Parquet and back."""

from __future__ import annotations

import copy
import io
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamlearn.archive.arrow import arrow_type, expand
from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.partition import Limits, PartitionArchiver
from streamlearn.archive.reader import read_archive
from streamlearn.archive.storage import ArchiveStore
from streamlearn.serde import InMemoryRegistry, frame, load_schema

SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.archive",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "score", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "maybe", "type": ["null", "string"], "default": None},
        {"name": "mixed", "type": {"type": "map", "values": ["null", "boolean", "long", "string"]}},
        {"name": "choice", "type": ["null", "long", "Colour"], "default": None},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [{"name": "again", "type": "Colour"}, {"name": "n", "type": "int"}],
            },
        },
    ],
}


def _value(n: int) -> dict[str, Any]:
    return {
        "flag": n % 2 == 0,
        "small": n,
        "big": 2**40 + n,
        "ratio": 0.5,
        "score": n / 3,
        "blob": bytes([n % 256]) * 3,
        "text": f"text {n} ✓",
        "at": datetime(2026, 11, 30, 12, n % 60, tzinfo=UTC),
        "at_us": datetime(2026, 11, 30, 12, 0, 0, n, tzinfo=UTC),
        "day": date(2026, 11, 30),
        "id": uuid.UUID(int=n),
        "price": Decimal("12.34") + n,
        "colour": "RED" if n % 2 else "BLUE",
        "digest": b"abcd",
        "tags": [f"t{i}" for i in range(n % 3)],
        "counts": {"a": n, "b": -n},
        "maybe": None if n % 2 else "here",
        "mixed": {"bool": True, "long": n, "string": "s", "null": None},
        "choice": [None, n, "BLUE"][n % 3],
        "inner": {"again": "BLUE", "n": n},
    }


def test_arrow_types_follow_the_avro_schema() -> None:
    struct = arrow_type(expand(SCHEMA))
    types = {struct.field(i).name: struct.field(i).type for i in range(struct.num_fields)}
    assert types["at"] == pa.timestamp("ms", tz="UTC")
    assert types["at_us"] == pa.timestamp("us", tz="UTC")
    assert types["day"] == pa.date32()
    assert types["id"] == pa.string()
    assert types["price"] == pa.decimal128(9, 2)
    assert types["colour"] == pa.string()
    assert types["digest"] == pa.binary(4)
    assert types["tags"] == pa.list_(pa.string())
    assert types["counts"] == pa.map_(pa.string(), pa.int64())
    assert types["maybe"] == pa.string()
    assert types["choice"] == pa.struct([("long", pa.int64()), ("Colour", pa.string())])
    assert types["inner"] == pa.struct([("again", pa.string()), ("n", pa.int32())])


def test_recursive_schema_is_refused() -> None:
    linked = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "next", "type": ["null", "Node"]}],
    }
    with pytest.raises(ArchiveError, match="recursive"):
        arrow_type(expand(linked))


def test_every_type_survives_parquet_as_avro_reads_it(tmp_path: Path) -> None:
    registry = InMemoryRegistry()
    schema_id = registry.register("t-value", __import__("json").dumps(SCHEMA))
    parsed = fastavro.parse_schema(copy.deepcopy(SCHEMA))
    messages = []
    for n in range(12):
        body = io.BytesIO()
        fastavro.schemaless_writer(body, parsed, _value(n))
        messages.append(
            Message(
                topic="t",
                partition=0,
                offset=n,
                key=None,
                value=frame(schema_id, body.getvalue()),
                timestamp=(TIMESTAMP_CREATE_TIME, 1_764_504_000_000 + n),
            )
        )
    results = {}
    for fmt in ("avro", "parquet"):
        root = tmp_path / fmt
        archiver = PartitionArchiver(
            "t", 0, None, store=ArchiveStore(str(root)), decoder=WriterDecoder(registry),
            fmt=fmt, limits=Limits(),  # type: ignore[arg-type]
        )  # fmt: skip
        archiver.add(messages)
        archiver.clock = lambda: float("inf")
        assert archiver.close_if_idle() is not None
        results[fmt] = [r.value for r in read_archive(str(root), "t")]
    expected = []
    for n in range(12):
        value = _value(n)
        value["ratio"] = pytest.approx(0.5)
        expected.append(value)
    assert results["avro"] == expected
    assert results["parquet"] == results["avro"]


def test_training_example_unions_as_parquet(tmp_path: Path) -> None:
    """The shipped TrainingExample has a map of a five-way union (feature values)."""
    struct = arrow_type(expand(load_schema("TrainingExample")))
    features = struct.field(struct.get_field_index("features")).type
    assert features == pa.map_(
        pa.string(),
        pa.struct(
            [("boolean", pa.bool_()), ("long", pa.int64()), ("double", pa.float64()),
             ("string", pa.string())]
        ),
    )  # fmt: skip
