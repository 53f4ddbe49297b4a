"""Read an archive back: the records of a topic, in (partition, offset) order.

This is what ``replay --source archive`` and any offline job read. It relies on the file
names alone to choose files (a range outside the wanted offsets is never opened), reads
Avro and Parquet files alike, and yields each offset of a partition once even if a file
was written twice with different cuts (see :mod:`streamlearn.archive.agent`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from streamlearn.archive.file_check import checked_rows
from streamlearn.archive.layout import ArchiveFile
from streamlearn.archive.storage import ArchiveStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class ArchivedRecord:
    """One Kafka record as archived."""

    topic: str
    """The Kafka topic name (namespace prefix included)."""
    partition: int
    offset: int
    timestamp_ms: int | None
    """The Kafka record timestamp (epoch ms), None when the record had none."""
    timestamp_type: str
    """``CREATE_TIME``, ``LOG_APPEND_TIME`` or ``NOT_AVAILABLE``."""
    key: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] | None
    schema_id: int | None
    """Registry id of the value's writer schema (None: not decoded)."""
    value: dict[str, Any] | Any | None
    """The value as its writer schema reads (fastavro's form: aware UTC datetimes, UUIDs);
    None for a null value or one that could not be decoded."""
    raw: bytes | None
    """The value's bytes, only when they could not be decoded."""
    error: str | None
    """Why the value could not be decoded (the serde's reason), else None."""
    error_detail: str | None

    @property
    def timestamp(self) -> datetime | None:
        return None if self.timestamp_ms is None else _EPOCH + self.timestamp_ms * _MS

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ArchivedRecord:
        stamp = row["timestamp"]
        headers = row["headers"]
        return cls(
            topic=row["topic"],
            partition=row["partition"],
            offset=row["offset"],
            timestamp_ms=None if stamp is None else (stamp - _EPOCH) // _MS,
            timestamp_type=row["timestamp_type"],
            key=row["key"],
            headers=None if headers is None else tuple((h["key"], h["value"]) for h in headers),
            schema_id=row["schema_id"],
            value=row["value"],
            raw=row["raw"],
            error=row["error"],
            error_detail=row["error_detail"],
        )


def _existing_store(root: str, storage_options: Mapping[str, Any] | None) -> ArchiveStore:
    """The archive at ``root``, refused when it is not there: a mistyped local root would
    read as an archive without files (a bucket that does not exist is refused by the
    listing itself, which asks whether the bucket is there when it finds nothing)."""
    store = ArchiveStore(root, storage_options=dict(storage_options or {}))
    if store.is_local:
        store.require_root()
    return store


def list_archive(
    root: str, topic: str, storage_options: Mapping[str, Any] | None = None
) -> list[ArchiveFile]:
    """The final files of ``topic`` (Kafka name) under ``root``, by partition and offset."""
    return _existing_store(root, storage_options).list_files(topic)


def read_archive(
    root: str,
    topic: str,
    partitions: list[int] | None = None,
    start_offsets: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Iterator[ArchivedRecord]:
    """The archived records of ``topic`` (Kafka name, namespace prefix included) under
    ``root`` (a local directory or fsspec URL), partition by partition, in offset order.

    ``partitions`` limits the partitions; per partition, ``start_offsets`` is the first
    offset wanted (inclusive) and ``end_offsets`` the offset to stop before (exclusive,
    like a high watermark). ``storage_options`` go to fsspec (e.g. s3fs' ``endpoint_url``,
    ``key``, ``secret``).
    """
    store = _existing_store(root, storage_options)
    wanted = None if partitions is None else set(partitions)
    starts = dict(start_offsets or {})
    ends = dict(end_offsets or {})
    files = [f for f in store.list_files(topic) if wanted is None or f.partition in wanted]
    # Among files starting at the same offset, the widest first: a narrower copy then
    # adds nothing.
    files.sort(key=lambda f: (f.partition, f.first_offset, -f.last_offset))
    next_wanted: dict[int, int] = {}
    for file in files:
        partition = file.partition
        start = max(starts.get(partition, 0), next_wanted.get(partition, 0))
        end = ends.get(partition)
        if file.last_offset < start or (end is not None and file.first_offset >= end):
            continue
        with store.open(file) as handle:
            # Checked against the file's name: a file cut short would leave offsets out.
            for row in checked_rows(handle, file, f"{store.describe()}/{file.path}"):
                offset = row["offset"]
                if offset < start:
                    continue
                if end is not None and offset >= end:
                    break
                yield ArchivedRecord.from_row(row)
                start = offset + 1
        next_wanted[partition] = start
