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
    ) -> None:
        """Add one record (``value`` as :class:`~streamlearn.archive.decode.WriterDecoder`
        gives it; ``timestamp_type`` as confluent-kafka's ``TIMESTAMP_*``)."""
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


class AvroFileWriter:
    """An Avro object container file of archive rows (fastavro)."""

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
        self._branch = None if schema is None else schema.value_branch
        self._schema_id_branch = _NULL if schema is None else ("int", schema.schema_id)
        metadata = {"streamlearn.topic": topic, "streamlearn.partition": str(partition)}
        if schema is not None:
            metadata["streamlearn.schema_id"] = str(schema.schema_id)
        self._file = path.open("xb")
        try:
            self._writer = fastavro.write.Writer(
                self._file,
                UNDECODED_ENVELOPE if schema is None else schema.envelope,
                codec=compression,
                metadata=metadata,
            )
        except Exception:
            self._file.close()
            path.unlink(missing_ok=True)
            raise

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
    ) -> None:
        # Every union's branch is named (fastavro's tuple notation): otherwise fastavro
        # tries each branch against the value first, a third of the cost of a row.
        if value is None:
            value_branch: tuple[str, Any] = _NULL
        elif self._branch is not None:
            value_branch = (self._branch, value)
        else:
            value_branch = value
        self._writer.write(
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
            }
        )

    def finish(self) -> int:
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
