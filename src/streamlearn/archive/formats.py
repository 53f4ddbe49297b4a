"""Archive files on local disk: Avro object container files (fastavro) or Parquet
(pyarrow), written row by row and read back as rows.

Writers write to an in-progress path only; :meth:`finish` flushes and fsyncs, so what the
storage then renames or uploads is complete on disk whatever happens to the process next.
Both formats carry the row schema of :mod:`streamlearn.archive.envelope`; an Avro file
embeds it (with the writer schema inside), a Parquet file keeps the writer schema's JSON
and id in its key-value metadata (``streamlearn.writer_schema``,
``streamlearn.schema_id``) beside the Arrow schema, so its values can be read back in
Avro's form (:func:`read_rows`). The writers live in :mod:`.formats_avro` and
:mod:`.formats_parquet`; this module opens and reads them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import IO, Any, cast

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq

from streamlearn.archive.arrow import expand, from_arrow
from streamlearn.archive.envelope import WriterSchema
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.file_writer import FileWriter, Headers
from streamlearn.archive.formats_avro import AvroFileWriter
from streamlearn.archive.formats_parquet import (
    PARQUET_ROW_GROUP_ROWS,
    ParquetFileWriter,
    parquet_schema,
)
from streamlearn.archive.layout import Format

__all__ = [
    "CODECS",
    "DEFAULT_COMPRESSION",
    "PARQUET_ROW_GROUP_ROWS",
    "AvroFileWriter",
    "FileWriter",
    "Headers",
    "ParquetFileWriter",
    "check_compression",
    "open_writer",
    "parquet_schema",
    "read_rows",
]

DEFAULT_COMPRESSION: dict[Format, str] = {"avro": "snappy", "parquet": "snappy"}
"""Snappy for both: cheap on CPU (the archive runs beside the agents) and read by every
Avro and Parquet implementation."""


CODECS: dict[Format, tuple[str, ...]] = {
    "avro": ("null", "deflate", "snappy", "zstandard", "lz4", "bzip2", "xz"),
    "parquet": ("none", "snappy", "gzip", "brotli", "lz4", "zstd"),
}
"""The codecs fastavro's writer and pyarrow's Parquet writer know by these names."""


def check_compression(fmt: Format, compression: str | None) -> None:
    """Raise :class:`ArchiveError` unless ``compression`` can write ``fmt`` files here (a
    known name whose library is installed), before a consumer starts rather than at the
    first file."""
    if compression is None:
        return
    known = CODECS[fmt]
    if compression not in known:
        raise ArchiveError(
            f"--compression {compression}: not a codec of {fmt} files; one of: {', '.join(known)}"
        )
    try:  # a known name can still lack its library (fastavro's zstandard, lz4)
        if fmt == "avro":
            schema = {"type": "record", "name": "probe", "fields": []}
            fastavro.writer(io.BytesIO(), schema, [{}], codec=compression)
        else:
            pq.write_table(pa.table({"probe": [0]}), io.BytesIO(), compression=compression)
    except Exception as exc:  # each library says "unavailable" its own way
        raise ArchiveError(f"--compression {compression} cannot write {fmt} here: {exc}") from exc


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
