"""Parquet files of archive rows (pyarrow): the Arrow schema of a file whose values have a
given writer schema, and the writer that builds it column by column in row groups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from streamlearn.archive.arrow import arrow_type, expand, to_arrow
from streamlearn.archive.envelope import TIMESTAMP_TYPES, WriterSchema
from streamlearn.archive.file_writer import Headers, fsync_close

PARQUET_ROW_GROUP_ROWS = 65_536


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
        return fsync_close(self._file)

    def discard(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()
            self.path.unlink(missing_ok=True)
