"""Archive files on local disk: Avro object container files (fastavro) or Parquet
(pyarrow), written row by row and read back as rows.

Writers write to an in-progress path only; :meth:`finish` flushes and fsyncs, so what the
storage then renames or uploads is complete on disk whatever happens to the process next.
Both formats carry the row schema of :mod:`streamlearn.archive.envelope`; an Avro file
embeds it (with the writer schema inside), a Parquet file keeps the writer schema's JSON
and id in its key-value metadata (``streamlearn.writer_schema``,
``streamlearn.schema_id``) beside the Arrow schema, so its values can be read back in
Avro's form (:func:`read_rows`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import IO, Any, Protocol, cast

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from streamlearn.archive.arrow import arrow_type, expand, from_arrow, to_arrow
from streamlearn.archive.envelope import TIMESTAMP_TYPES, UNDECODED_ENVELOPE, WriterSchema
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import Format

DEFAULT_COMPRESSION: dict[Format, str] = {"avro": "snappy", "parquet": "snappy"}
"""Snappy for both: cheap on CPU (the archive runs beside the agents) and read by every
Avro and Parquet implementation."""
PARQUET_ROW_GROUP_ROWS = 65_536

Headers = list[tuple[str, bytes | None]] | None


class FileWriter(Protocol):
    """One in-progress archive file."""

    def append(
        self,
        offset: int,
        timestamp: int | None,
        timestamp_type: int,
        key: bytes | None,
        headers: Headers,
        value: Any,
        raw: bytes | None,
        error: str | None,
        detail: str | None,
        body: bytes | memoryview | None = None,
    ) -> None:
        """Add one record (``value`` as :class:`~streamlearn.archive.decode.WriterDecoder`
        gives it; ``timestamp_type`` as confluent-kafka's ``TIMESTAMP_*``). ``body``: the
        Avro body ``value`` was decoded from (the record's value after the wire-format
        header), which a writer may copy instead of encoding ``value`` again."""
        ...

    def finish(self) -> int:
        """Write everything, fsync and close; the file's size in bytes."""
        ...

    def discard(self) -> None:
        """Close and delete the file."""
        ...


def _fsync_close(file: IO[bytes]) -> int:
    file.flush()
    os.fsync(file.fileno())
    size = file.tell()
    file.close()
    return size


_NULL = ("null", None)
_BYTE = tuple(bytes((n,)) for n in range(128))
_NULL_BYTE = _BYTE[0]
_ONE_BYTE = _BYTE[2]  # a union's branch 1 (zigzag varint)
_TIMESTAMP_TYPE_BYTES = tuple(_BYTE[2 * n] for n in range(len(TIMESTAMP_TYPES)))
_NO_ERROR = b"\x00\x00\x00"  # raw, error and error_detail all null


def _long(n: int) -> bytes:
    """An Avro int or long (zigzag varint), as fastavro writes it."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _BYTE[n]
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _bytes(data: bytes) -> bytes:
    """An Avro bytes or string (length, then the bytes)."""
    size = len(data)
    return (_BYTE[size * 2] if size < 64 else _long(size)) + data


def _headers(headers: list[tuple[str, bytes | None]]) -> bytes:
    """The ``headers`` field's array branch: one block of items, then the end block."""
    parts = [_ONE_BYTE, _long(len(headers))]
    for key, value in headers:
        parts.append(_bytes(key.encode()))
        parts.append(_NULL_BYTE if value is None else _ONE_BYTE + _bytes(value))
    parts.append(_NULL_BYTE)
    return b"".join(parts)


def _read_long(data: bytes | memoryview) -> tuple[int, int]:
    """The zigzag varint at the start of ``data`` and its length in bytes."""
    n = shift = size = 0
    while True:
        byte = data[size]
        size += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), size
        shift += 7


class _Block:
    """Rows already encoded, as :meth:`fastavro.write.Writer.write_block` takes them."""

    __slots__ = ("bytes_", "num_records")

    def __init__(self, rows: bytes | bytearray, count: int) -> None:
        self.bytes_ = io.BytesIO(rows)
        self.num_records = count


class AvroFileWriter:
    """An Avro object container file of archive rows (fastavro).

    A decoded value is not encoded again: the row is its metadata fields, encoded here
    as fastavro encodes them, around the value's own Avro body (the bytes read from
    Kafka, after the wire-format header) with the envelope's union index. The rows go
    into container blocks of the file's codec through fastavro's ``write_block``, cut
    where fastavro's own ``write`` would cut them. Rows without such a body (null or
    undecodable values, or an ``append`` without ``body``) are encoded by fastavro.
    """

    def __init__(
        self,
        path: Path,
        *,
        topic: str,
        partition: int,
        schema: WriterSchema | None,
        compression: str,
        sync_marker: bytes = b"",
    ) -> None:
        self.path = path
        self._topic, self._partition = topic, partition
        self._schema_id = None if schema is None else schema.schema_id
        self._branch = None if schema is None else schema.value_branch
        self._schema_id_branch = _NULL if schema is None else ("int", schema.schema_id)
        self._layout = None if schema is None else schema.value_layout
        self._head = _bytes(topic.encode()) + _long(partition)
        self._schema_id_bytes = b"" if schema is None else _ONE_BYTE + _long(schema.schema_id)
        envelope = UNDECODED_ENVELOPE if schema is None else schema.envelope
        self._parsed = fastavro.parse_schema(envelope)
        self._rows = bytearray()
        self._count = 0
        metadata = {"streamlearn.topic": topic, "streamlearn.partition": str(partition)}
        if schema is not None:
            metadata["streamlearn.schema_id"] = str(schema.schema_id)
        self._file = path.open("xb")
        try:
            self._writer = fastavro.write.Writer(
                self._file,
                envelope,
                codec=compression,
                metadata=metadata,
                sync_marker=sync_marker,
            )
        except Exception:
            self._file.close()
            path.unlink(missing_ok=True)
            raise
        self._sync_interval: int = self._writer.sync_interval

    def append(
        self,
        offset: int,
        timestamp: int | None,
        timestamp_type: int,
        key: bytes | None,
        headers: Headers,
        value: Any,
        raw: bytes | None,
        error: str | None,
        detail: str | None,
        body: bytes | memoryview | None = None,
    ) -> None:
        layout = self._layout
        if (
            body is not None
            and value is not None
            and layout is not None
            and raw is None
            and error is None
            and detail is None
        ):
            prefix, shift = layout
            if shift:  # the writer's union index, moved past the envelope's null
                index, size = _read_long(body)
                prefix, body = _long(index + shift), body[size:]
            self._rows += b"".join(
                (
                    self._head,
                    _long(offset),
                    _NULL_BYTE if timestamp is None else _ONE_BYTE + _long(timestamp),
                    _TIMESTAMP_TYPE_BYTES[timestamp_type],
                    _NULL_BYTE if key is None else _ONE_BYTE + _bytes(key),
                    _NULL_BYTE if not headers else _headers(headers),
                    self._schema_id_bytes,
                    prefix,
                    body,
                    _NO_ERROR,
                )
            )
        else:
            self._rows += self._encode(
                offset, timestamp, timestamp_type, key, headers, value, raw, error, detail
            )
        self._count += 1
        if len(self._rows) >= self._sync_interval:  # where fastavro's write cuts a block
            self._write_block()

    def _encode(
        self,
        offset: int,
        timestamp: int | None,
        timestamp_type: int,
        key: bytes | None,
        headers: Headers,
        value: Any,
        raw: bytes | None,
        error: str | None,
        detail: str | None,
    ) -> bytes:
        """The row encoded by fastavro."""
        # Every union's branch is named (fastavro's tuple notation): otherwise fastavro
        # tries each branch against the value first, a third of the cost of a row.
        if value is None:
            value_branch: tuple[str, Any] = _NULL
        elif self._branch is not None:
            value_branch = (self._branch, value)
        else:
            value_branch = value
        out = io.BytesIO()
        fastavro.schemaless_writer(
            out,
            self._parsed,
            {
                "topic": self._topic,
                "partition": self._partition,
                "offset": offset,
                "timestamp": _NULL if timestamp is None else ("long", timestamp),
                "timestamp_type": TIMESTAMP_TYPES[timestamp_type],
                "key": _NULL if key is None else ("bytes", key),
                "headers": (
                    _NULL
                    if not headers
                    else ("array", [{"key": k, "value": v} for k, v in headers])
                ),
                "schema_id": _NULL if value is None else self._schema_id_branch,
                "value": value_branch,
                "raw": _NULL if raw is None else ("bytes", raw),
                "error": _NULL if error is None else ("string", error),
                "error_detail": _NULL if detail is None else ("string", detail),
            },
        )
        return out.getvalue()

    def _write_block(self) -> None:
        self._writer.write_block(_Block(self._rows, self._count))
        self._rows = bytearray()
        self._count = 0

    def finish(self) -> int:
        if self._count:
            self._write_block()
        self._writer.flush()
        return _fsync_close(self._file)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)


_HEADER = pa.struct([pa.field("key", pa.string()), pa.field("value", pa.binary())])


def parquet_schema(schema: WriterSchema | None, topic: str, partition: int) -> pa.Schema:
    """The Arrow schema of a Parquet archive file whose values have ``schema``."""
    value_type = pa.null() if schema is None else arrow_type(expand(schema.schema))
    metadata = {"streamlearn.topic": topic, "streamlearn.partition": str(partition)}
    if schema is not None:
        metadata["streamlearn.schema_id"] = str(schema.schema_id)
        metadata["streamlearn.writer_schema"] = json.dumps(schema.schema)
    return pa.schema(
        [
            pa.field("topic", pa.string(), nullable=False),
            pa.field("partition", pa.int32(), nullable=False),
            pa.field("offset", pa.int64(), nullable=False),
            pa.field("timestamp", pa.timestamp("ms", tz="UTC")),
            pa.field("timestamp_type", pa.string(), nullable=False),
            pa.field("key", pa.binary()),
            pa.field("headers", pa.list_(_HEADER)),
            pa.field("schema_id", pa.int32()),
            pa.field("value", value_type),
            pa.field("raw", pa.binary()),
            pa.field("error", pa.string()),
            pa.field("error_detail", pa.string()),
        ],
        metadata=metadata,
    )


class ParquetFileWriter:
    """A Parquet file of archive rows (pyarrow), built column by column in row groups."""

    def __init__(
        self,
        path: Path,
        *,
        topic: str,
        partition: int,
        schema: WriterSchema | None,
        compression: str,
    ) -> None:
        self.path = path
        self._topic, self._partition = topic, partition
        self._schema_id = None if schema is None else schema.schema_id
        self._arrow = parquet_schema(schema, topic, partition)
        self._convert = None if schema is None else to_arrow(expand(schema.schema))
        self._file = path.open("xb")
        self._writer = pq.ParquetWriter(self._file, self._arrow, compression=compression)
        self._columns: dict[str, list[Any]] = {name: [] for name in self._arrow.names}

    def append(
        self,
        offset: int,
        timestamp: int | None,
        timestamp_type: int,
        key: bytes | None,
        headers: Headers,
        value: Any,
        raw: bytes | None,
        error: str | None,
        detail: str | None,
        body: bytes | memoryview | None = None,
    ) -> None:
        columns = self._columns
        columns["offset"].append(offset)
        columns["timestamp"].append(timestamp)
        columns["timestamp_type"].append(TIMESTAMP_TYPES[timestamp_type])
        columns["key"].append(key)
        columns["headers"].append(
            None if not headers else [{"key": k, "value": v} for k, v in headers]
        )
        columns["schema_id"].append(None if value is None else self._schema_id)
        columns["value"].append(value if self._convert is None else self._convert(value))
        columns["raw"].append(raw)
        columns["error"].append(error)
        columns["error_detail"].append(detail)
        if len(columns["offset"]) >= PARQUET_ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        rows = len(self._columns["offset"])
        if not rows:
            return
        self._columns["topic"] = [self._topic] * rows
        self._columns["partition"] = [self._partition] * rows
        arrays = [pa.array(self._columns[field.name], type=field.type) for field in self._arrow]
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._arrow))
        self._columns = {name: [] for name in self._arrow.names}

    def finish(self) -> int:
        self._flush()
        self._writer.close()
        return _fsync_close(self._file)

    def discard(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()
            self.path.unlink(missing_ok=True)


def open_writer(
    path: Path,
    fmt: Format,
    *,
    topic: str,
    partition: int,
    schema: WriterSchema | None,
    compression: str | None = None,
) -> FileWriter:
    """A new in-progress file at ``path`` (which must not exist)."""
    codec = compression or DEFAULT_COMPRESSION[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    kind = AvroFileWriter if fmt == "avro" else ParquetFileWriter
    return kind(path, topic=topic, partition=partition, schema=schema, compression=codec)


def read_rows(file: IO[bytes], fmt: Format) -> Iterator[dict[str, Any]]:
    """The rows of an archive file, in file order, values in fastavro's form (the
    envelope's fields; ``timestamp`` an aware UTC datetime or None)."""
    if fmt == "avro":
        for row in fastavro.reader(file):
            yield cast(dict[str, Any], row)
        return
    parquet = pq.ParquetFile(file)
    metadata = parquet.schema_arrow.metadata or {}
    writer_json = metadata.get(b"streamlearn.writer_schema")
    if writer_json is None and parquet.schema_arrow.field("value").type != pa.null():
        raise ArchiveError("Parquet file without streamlearn.writer_schema metadata")
    convert = from_arrow(expand(json.loads(writer_json))) if writer_json else None
    for batch in parquet.iter_batches():
        for row in batch.to_pylist():
            if row["timestamp"] is not None:
                row["timestamp"] = row["timestamp"].replace(tzinfo=UTC)
            if convert is not None:
                row["value"] = convert(row["value"])
            yield row
