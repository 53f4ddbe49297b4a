"""Avro object container files of archive rows (fastavro), with the rows' bytes built by
hand where the record's own Avro body can be copied (see :class:`AvroFileWriter`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import fastavro

from streamlearn.archive.envelope import TIMESTAMP_TYPES, UNDECODED_ENVELOPE, WriterSchema
from streamlearn.archive.file_writer import Headers, fsync_close

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
        return fsync_close(self._file)

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
