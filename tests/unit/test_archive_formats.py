"""Avro archive files written by copying each value's Avro body: the same files as
encoding every row with fastavro.

The writer encodes a row's metadata itself and copies the value's bytes as read from
Kafka (with the envelope's union index). The reference here is the row written the
straightforward way, one ``fastavro.write.Writer.write`` per row with the decoded value:
with the same sync marker, the files are the same bytes, and either way fastavro and the
project's readers read the same rows.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.envelope import TIMESTAMP_TYPES, UNDECODED_ENVELOPE, WriterSchema
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.formats import AvroFileWriter, read_rows
from streamlearn.archive.partition import Limits, PartitionArchiver
from streamlearn.archive.reader import list_archive, read_archive
from streamlearn.archive.storage import ArchiveStore
from streamlearn.serde import InMemoryRegistry, frame, load_schema
from streamlearn.serde.exceptions import DecodeError

SYNC = b"0123456789abcdef"
SCHEMA_ID = 7
TOPIC = "ns.archive.formats"

RECORD: dict[str, Any] = {
    "type": "record",
    "name": "Everything",
    "namespace": "test.formats",
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
        {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {
            "name": "price",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {
            "name": "amount",
            "type": {
                "type": "fixed",
                "name": "Amount",
                "size": 8,
                "logicalType": "decimal",
                "precision": 12,
                "scale": 3,
            },
        },
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "BLUE"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counts", "type": {"type": "map", "values": "long"}},
        {"name": "maybe", "type": ["null", "string"], "default": None},
        {"name": "mixed", "type": {"type": "map", "values": ["null", "boolean", "long", "string"]}},
        {"name": "choice", "type": ["null", "long", "Colour"], "default": None},
        {
            "name": "when",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
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


def _everything(n: int) -> dict[str, Any]:
    return {
        "flag": n % 2 == 0,
        "small": n - 50,
        "big": 2**40 + n,
        "ratio": 0.5,
        "score": n / 3,
        "blob": bytes([n % 256]) * (n % 5),
        "text": f"text {n} ✓" * (n % 4),
        "at": datetime(2026, 11, 30, 12, n % 60, tzinfo=UTC),
        "at_us": datetime(2026, 11, 30, 12, 0, 0, n, tzinfo=UTC),
        "day": date(2026, 11, 30),
        "clock": time(12, n % 60, 1),
        "id": uuid.UUID(int=n),
        "price": Decimal("12.34") + n - 100,
        "amount": Decimal("-1.500") * n,
        "colour": "RED" if n % 2 else "BLUE",
        "digest": b"abcd",
        "tags": [f"t{i}" for i in range(n % 3)],
        "counts": {"a": n, "b": -n},
        "maybe": None if n % 2 else "here",
        "mixed": {"bool": True, "long": n, "string": "s", "null": None},
        "choice": [None, n, "BLUE"][n % 3],
        "when": None if n % 3 else datetime(2026, 1, 1, tzinfo=UTC),
        "inner": {"again": "BLUE", "n": n},
    }


POINT = {
    "type": "record",
    "name": "Point",
    "fields": [{"name": "x", "type": "double"}, {"name": "label", "type": ["null", "string"]}],
}
"""No namespace: nested in the envelope, it keeps its own full name."""

CASES: dict[str, tuple[Any, Callable[[int], Any]]] = {
    "record with logical types and unions": (RECORD, _everything),
    "record without namespace": (POINT, lambda n: {"x": n / 7, "label": None if n % 2 else "p"}),
    "union without null": (
        ["string", "long", POINT, {"type": "long", "logicalType": "timestamp-millis"}],
        lambda n: [
            f"s{n}",
            n * 1000,
            {"x": 1.5, "label": "q"},
            datetime(2026, 11, 30, tzinfo=UTC),
        ][n % 4],
    ),
    "union with null last": (["string", "null"], lambda n: None if n % 3 == 0 else f"s{n}"),
    "union with null first": (
        ["null", POINT],
        lambda n: None if n % 3 == 0 else {"x": 0.0, "label": "z"},
    ),
    "string": ("string", lambda n: "x" * (n % 70)),
    "timestamp": (
        {"type": "long", "logicalType": "timestamp-millis"},
        lambda n: datetime(2026, 11, 30, 12, tzinfo=UTC),
    ),
    "array of records": (
        {"type": "array", "items": POINT},
        lambda n: [{"x": 1.0, "label": None}] * (n % 3),
    ),
    "enum": (
        {"type": "enum", "name": "Mood", "symbols": ["UP", "DOWN"]},
        lambda n: ["UP", "DOWN"][n % 2],
    ),
    "TelemetryEvent": (
        load_schema("TelemetryEvent"),
        lambda n: {
            "event_id": str(uuid.UUID(int=n)),
            "event_type": "page_view",
            "user_id": f"u-{n % 7}",
            "client_ts": datetime(2026, 11, 30, 9, n % 60, tzinfo=UTC),
            "received_ts": datetime(2026, 11, 30, 9, n % 60, 1, tzinfo=UTC),
            "url": None if n % 5 else f"https://shop.example/p/{n}",
            "app_version": "web-1",
            "properties": {"n": str(n)},
        },
    ),
}


class Registry:
    """One writer schema, by id."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema

    def schema_by_id(self, schema_id: int) -> Any:
        assert schema_id == SCHEMA_ID
        return copy.deepcopy(self.schema)


Row = tuple[
    int, int | None, int, bytes | None, Any, Any, bytes | None, str | None, str | None, bytes | None
]
"""What ``append`` takes: offset, timestamp, timestamp type, key, headers, value, raw,
error, detail, and the value's body."""


def _rows(schema: Any, make: Callable[[int], Any], count: int) -> tuple[WriterSchema, list[Row]]:
    """``count`` records of every kind around values of ``schema``: decoded values (their
    bytes encoded by fastavro, framed, decoded back), undecodable values, tombstones;
    with and without keys, headers and timestamps."""
    decoder = WriterDecoder(Registry(schema))
    parsed = fastavro.parse_schema(copy.deepcopy(schema))
    writer = decoder.writer_schema(SCHEMA_ID)
    rows: list[Row] = []
    for n in range(count):
        offset = 2**33 + 2 * n
        timestamp = None if n % 11 == 3 else 1_764_504_000_000 + n
        kind = n % 3 if timestamp is not None else 0
        key = [b"user-1", None, b"", b"k" * 100][n % 4]
        headers = [None, [], [("trace", b"t-1"), ("empty", None), ("é", b"\x00" * 70)]][n % 3]
        if n % 13 == 5:  # undecodable
            data = frame(SCHEMA_ID, b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
            with pytest.raises(DecodeError) as caught:
                decoder.decode(data)
            reason, detail = caught.value.reason, caught.value.detail
            rows.append((offset, timestamp, kind, key, headers, None, data, reason, detail, None))
            continue
        if n % 17 == 8:  # tombstone
            rows.append((offset, timestamp, kind, key, headers, None, None, None, None, None))
            continue
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, make(n))
        data = frame(SCHEMA_ID, out.getvalue())
        decoded_schema, value = decoder.decode(data)
        assert decoded_schema is writer
        rows.append((offset, timestamp, kind, key, headers, value, None, None, None, data[5:]))
    return writer, rows


def _write(path: Path, schema: WriterSchema | None, rows: list[Row], codec: str) -> None:
    """With the writer under test: bodies copied where given."""
    writer = AvroFileWriter(
        path, topic=TOPIC, partition=3, schema=schema, compression=codec, sync_marker=SYNC
    )
    for row in rows:
        writer.append(*row)
    writer.finish()


def _write_reference(path: Path, schema: WriterSchema | None, rows: list[Row], codec: str) -> None:
    """The straightforward way: every row (the decoded value inside) encoded by fastavro."""
    metadata = {"streamlearn.topic": TOPIC, "streamlearn.partition": "3"}
    if schema is not None:
        metadata["streamlearn.schema_id"] = str(schema.schema_id)
    with path.open("xb") as file:
        writer = fastavro.write.Writer(
            file, schema.envelope if schema else UNDECODED_ENVELOPE, codec=codec, metadata=metadata,
            sync_marker=SYNC,
        )  # fmt: skip
        for offset, timestamp, kind, key, headers, value, raw, error, detail, _ in rows:
            writer.write(
                {
                    "topic": TOPIC,
                    "partition": 3,
                    "offset": offset,
                    "timestamp": timestamp,
                    "timestamp_type": TIMESTAMP_TYPES[kind],
                    "key": key,
                    "headers": [{"key": k, "value": v} for k, v in headers] if headers else None,
                    "schema_id": None if value is None else SCHEMA_ID,
                    "value": value,
                    "raw": raw,
                    "error": error,
                    "error_detail": detail,
                }
            )
        writer.flush()


def _fastavro_rows(path: Path) -> list[Any]:
    with path.open("rb") as file:
        return list(fastavro.reader(file))


def _project_rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open("rb") as file:
        yield from read_rows(file, "avro")


@pytest.mark.parametrize("codec", ["null", "snappy", "deflate"])
@pytest.mark.parametrize("case", list(CASES))
def test_copied_bodies_write_the_same_file(
    tmp_path: Path, case: str, codec: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema, make = CASES[case]
    writer, rows = _rows(schema, make, 600)
    assert writer.value_layout is not None
    encoded: list[int] = []
    encode = AvroFileWriter._encode

    def counting(self: AvroFileWriter, offset: int, *args: Any) -> bytes:
        encoded.append(offset)
        return encode(self, offset, *args)

    monkeypatch.setattr(AvroFileWriter, "_encode", counting)
    _write(tmp_path / "copied.avro", writer, rows, codec)
    # Only rows without a decoded value were encoded by fastavro; the others were copied.
    assert encoded == [row[0] for row in rows if row[5] is None]
    assert len(encoded) < len(rows) / 2
    _write_reference(tmp_path / "reference.avro", writer, rows, codec)
    copied = (tmp_path / "copied.avro").read_bytes()
    assert copied == (tmp_path / "reference.avro").read_bytes()
    read = _fastavro_rows(tmp_path / "copied.avro")
    assert read == _fastavro_rows(tmp_path / "reference.avro")
    assert [r["offset"] for r in read] == [r[0] for r in rows]
    assert [r["value"] for r in read] == [r[5] for r in rows]
    assert list(_project_rows(tmp_path / "copied.avro")) == read
    with (tmp_path / "copied.avro").open("rb") as file:
        blocks = list(fastavro.block_reader(file))
    assert len(blocks) > 1  # several container blocks, cut where fastavro cuts them
    assert sum(b.num_records for b in blocks) == len(rows)


def test_rows_without_bodies_are_encoded_by_fastavro(tmp_path: Path) -> None:
    writer, rows = _rows(RECORD, _everything, 100)
    without = [(*row[:9], None) for row in rows]
    _write(tmp_path / "encoded.avro", writer, without, "snappy")
    _write_reference(tmp_path / "reference.avro", writer, rows, "snappy")
    assert (tmp_path / "encoded.avro").read_bytes() == (tmp_path / "reference.avro").read_bytes()


def test_file_without_value_schema(tmp_path: Path) -> None:
    _, rows = _rows(RECORD, _everything, 60)
    kept = [row for row in rows if row[5] is None]
    assert kept
    _write(tmp_path / "undecoded.avro", None, kept, "snappy")
    _write_reference(tmp_path / "reference.avro", None, kept, "snappy")
    assert (tmp_path / "undecoded.avro").read_bytes() == (tmp_path / "reference.avro").read_bytes()


def _with_body(schema: Any, body: bytes) -> tuple[WriterSchema, Row]:
    decoder = WriterDecoder(Registry(schema))
    data = frame(SCHEMA_ID, body)
    writer, value = decoder.decode(data)
    return writer, (1, 2, TIMESTAMP_CREATE_TIME, b"k", None, value, None, None, None, data[5:])


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        # A UUID in capitals: decoded to the same UUID as in lower case.
        (
            {"type": "string", "logicalType": "uuid"},
            b"\x48" + str(uuid.UUID(int=7)).upper().encode(),
        ),
        # A long in more bytes than needed (0 as 0x80 0x00).
        ("long", b"\x80\x00"),
        # A decimal's unscaled value with leading zero bytes.
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
            b"\x08\x00\x00\x04\xd2",
        ),
        # A union branch index in more bytes than needed.
        (["string", "long"], b"\x82\x00\x06"),
    ],
)
def test_bodies_not_as_fastavro_writes_them_read_the_same(
    tmp_path: Path, schema: Any, body: bytes
) -> None:
    """Bytes another producer may write differently from fastavro: the copy keeps them,
    and reads as the same value as the encoded one."""
    writer, row = _with_body(schema, body)
    _write(tmp_path / "copied.avro", writer, [row], "snappy")
    _write_reference(tmp_path / "reference.avro", writer, [row], "snappy")
    assert _fastavro_rows(tmp_path / "copied.avro") == _fastavro_rows(tmp_path / "reference.avro")
    assert _fastavro_rows(tmp_path / "copied.avro")[0]["value"] == row[5]


def test_archiver_files_read_back_through_read_archive(tmp_path: Path) -> None:
    """End to end: framed records through the archiver, read with ``read_archive``."""
    schema, make = CASES["union without null"]
    registry = InMemoryRegistry()
    schema_id = registry.register(f"{TOPIC}-value", json.dumps(schema))
    parsed = fastavro.parse_schema(copy.deepcopy(schema))
    messages = []
    for n in range(40):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, make(n))
        messages.append(
            Message(
                topic=TOPIC,
                partition=0,
                offset=n,
                key=None,
                value=frame(schema_id, out.getvalue()),
                timestamp=(TIMESTAMP_CREATE_TIME, 1_764_504_000_000 + n),
            )
        )
    archiver = PartitionArchiver(
        TOPIC, 0, None, store=ArchiveStore(str(tmp_path)), decoder=WriterDecoder(registry),
        fmt="avro", limits=Limits(max_records=15),
    )  # fmt: skip
    archiver.add(messages)
    archiver.clock = lambda: float("inf")
    assert archiver.close_if_idle() is not None
    records = list(read_archive(str(tmp_path), TOPIC))
    assert [r.offset for r in records] == list(range(40))
    assert [r.value for r in records] == [make(n) for n in range(40)]
    assert {r.schema_id for r in records} == {schema_id}


def test_read_archive_refuses_a_local_root_that_is_not_there(tmp_path: Path) -> None:
    """A mistyped local root read as an archive without files (an offline job got nothing,
    without a word), where a missing bucket was already refused."""
    missing = str(tmp_path / "no-such-archive")
    with pytest.raises(ArchiveError, match="no-such-archive: no such directory"):
        list(read_archive(missing, TOPIC))
    with pytest.raises(ArchiveError, match="no-such-archive: no such directory"):
        list_archive(missing, TOPIC)
    assert list(read_archive(str(tmp_path), TOPIC)) == []  # there, without files: empty
