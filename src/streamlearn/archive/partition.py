"""One partition's archiving: which file each record goes to, and when a file is done.

Rules, all functions of the records except the idle close:

- **Bucket.** A partition's bucket is the hour (UTC) of the newest Kafka timestamp read
  in it so far. A record of a later hour moves the bucket forward and closes the open
  file; a record of an earlier hour (a late record) goes into the current bucket's file
  with its own timestamp kept, and is counted as late. Buckets therefore never move back,
  so a partition has one open file at a time, its files cover consecutive offset ranges,
  and a file in ``hour=HH`` holds the records read while the partition's newest
  timestamp was in that hour. Readers wanting an exact hour filter on ``timestamp``
  (late records of that hour can sit in a later hour's files). A record without a
  timestamp goes into the current bucket (hour 0 of 1970 when there is none yet).
- **Schema.** A file holds values of one writer schema: a decoded value of another schema
  id closes it. Undecodable and null values go into whatever file is open (a file opened
  by one has no value schema until a decoded value closes it).
- **Size.** A file closes after the record that brings it to ``max_records`` records or
  ``max_bytes`` bytes, counted as the records' key and value bytes read from Kafka (not
  the compressed file size, so the cut is the same whatever the format or compression).
- **Idle.** A file that received nothing for ``idle_close_s`` (wall clock) closes, so a
  quiet partition's records reach a final file.
- **Stop.** A graceful stop (SIGTERM) makes every open file final, so what was read
  before the stop is in files once the process has exited.

Idle and stop are the rules that depend on timing: replaying the same records can cut a
file at another offset (never losing or repeating one).

A file closing is made final (renamed or uploaded) before anything else happens to the
partition; the agent commits the offset after its last record only then. When the
partition is revoked or lost, the open file is abandoned (deleted): its
records are read again by whoever takes the partition, which resumes from the final files
and so writes the same files (the cut rules being functions of the records).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.envelope import WriterSchema
from streamlearn.archive.formats import FileWriter, open_writer
from streamlearn.archive.layout import HOUR_MS, ArchiveFile, Format, ResumePoint
from streamlearn.archive.storage import ArchiveStore
from streamlearn.serde.exceptions import DecodeError
from streamlearn.serde.wire import HEADER_SIZE


class MessageLike(Protocol):
    """What the archive reads of a Kafka record (confluent-kafka's ``Message``)."""

    def offset(self) -> int | None: ...

    def timestamp(self) -> tuple[int, int]: ...

    def key(self) -> bytes | None: ...

    def value(self) -> bytes | None: ...

    def headers(self) -> Any: ...


@dataclass(frozen=True)
class Limits:
    """When a file is complete, besides a new hour or schema."""

    max_records: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    idle_close_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_records < 1 or self.max_bytes < 1 or self.idle_close_s <= 0:
            raise ValueError(f"archive limits must be positive: {self}")


class CloseReason(StrEnum):
    HOUR = "hour"
    SCHEMA = "schema"
    RECORDS = "records"
    BYTES = "bytes"
    IDLE = "idle"
    STOP = "stop"


@dataclass(frozen=True)
class Completed:
    """A file made final, with what it holds."""

    file: ArchiveFile
    reason: CloseReason
    records: int
    size: int
    """Bytes on storage."""
    undecodable: dict[str, int]
    """Undecodable records by reason."""
    late: int


@dataclass
class _OpenFile:
    writer: FileWriter
    partial: Path
    first_offset: int
    bucket_ms: int
    schema: WriterSchema | None
    last_offset: int = -1
    records: int = 0
    input_bytes: int = 0
    late: int = 0
    undecodable: Counter[str] = field(default_factory=Counter)


class PartitionArchiver:
    """The open file and position of one owned partition."""

    def __init__(
        self,
        topic: str,
        partition: int,
        resume: ResumePoint | None,
        *,
        store: ArchiveStore,
        decoder: WriterDecoder,
        fmt: Format,
        limits: Limits,
        compression: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.next_offset: int | None = None if resume is None else resume.next_offset
        """The first offset not yet in a final or the open file (None: whatever comes)."""
        self.bucket: int | None = None if resume is None else resume.bucket_ms
        self.store = store
        self.decoder = decoder
        self.fmt: Format = fmt
        self.limits = limits
        self.compression = compression
        self.clock = clock
        self.skipped = 0
        """Records below ``next_offset`` that were delivered again (and not written)."""
        self._open: _OpenFile | None = None
        self._last_append = clock()

    @property
    def open_records(self) -> int:
        """Records in the open file."""
        return 0 if self._open is None else self._open.records

    def add(self, messages: Sequence[MessageLike]) -> list[Completed]:
        """Archive a batch of this partition's records, in offset order; the files that
        became final meanwhile."""
        completed: list[Completed] = []
        max_records, max_bytes = self.limits.max_records, self.limits.max_bytes
        decode = self.decoder.decode
        next_offset = self.next_offset
        bucket = self.bucket
        current = self._open
        for message in messages:
            offset = message.offset()
            if offset is None:
                continue
            if next_offset is not None and offset < next_offset:
                self.skipped += 1
                continue
            timestamp_type, timestamp = message.timestamp()
            late = False
            if timestamp_type == 0 or timestamp < 0:
                timestamp_ms: int | None = None
                record_bucket = bucket if bucket is not None else 0
            else:
                timestamp_ms = timestamp
                record_bucket = timestamp - timestamp % HOUR_MS
            if bucket is None or record_bucket > bucket:
                bucket = self.bucket = record_bucket
            elif record_bucket < bucket:
                late = True
            data = message.value()
            key = message.key()
            value: Any = None
            schema: WriterSchema | None = None
            error: str | None = None
            detail: str | None = None
            if data is not None:
                try:
                    schema, value = decode(data)
                except DecodeError as exc:
                    error = exc.reason
                    detail = exc.detail
            if current is not None:
                if current.bucket_ms != bucket:
                    completed.append(self._close(CloseReason.HOUR))
                    current = None
                elif schema is not None and current.schema is not schema:
                    completed.append(self._close(CloseReason.SCHEMA))
                    current = None
            if current is None:
                current = self._start(offset, schema)
            if error is None:
                # With the value, the Avro body it was decoded from (after the wire-format
                # header): the Avro writer copies it instead of encoding the value again.
                current.writer.append(
                    offset, timestamp_ms, timestamp_type, key, message.headers(), value,
                    None, None, None, None if data is None else data[HEADER_SIZE:],
                )  # fmt: skip
            else:
                current.writer.append(
                    offset, timestamp_ms, timestamp_type, key, message.headers(), None,
                    data, error, detail,
                )  # fmt: skip
                current.undecodable[error] += 1
            current.records += 1
            current.input_bytes += (len(data) if data else 0) + (len(key) if key else 0)
            current.last_offset = offset
            if late:
                current.late += 1
            next_offset = self.next_offset = offset + 1
            if current.records >= max_records:
                completed.append(self._close(CloseReason.RECORDS))
                current = None
            elif current.input_bytes >= max_bytes:
                completed.append(self._close(CloseReason.BYTES))
                current = None
        if messages:
            self._last_append = self.clock()
        return completed

    def close_if_idle(self) -> Completed | None:
        """Close the open file if nothing was added for ``idle_close_s``."""
        if self._open is None or self.clock() - self._last_append < self.limits.idle_close_s:
            return None
        return self._close(CloseReason.IDLE)

    def finish(self) -> Completed | None:
        """Make the open file final now (a graceful stop), if there is one."""
        if self._open is None:
            return None
        return self._close(CloseReason.STOP)

    def abandon(self) -> int:
        """Delete the open file (revocation, stop); how many records it held. The next
        owner reads them again from the last final file."""
        current, self._open = self._open, None
        if current is None:
            return 0
        current.writer.discard()
        if self.next_offset is not None:
            self.next_offset = current.first_offset
        return current.records

    def _start(self, offset: int, schema: WriterSchema | None) -> _OpenFile:
        assert self.bucket is not None
        partial = self.store.partial_path(self.topic, self.partition, offset, self.fmt)
        writer = open_writer(
            partial,
            self.fmt,
            topic=self.topic,
            partition=self.partition,
            schema=schema,
            compression=self.compression,
        )
        self._open = _OpenFile(writer, partial, offset, self.bucket, schema)
        return self._open

    def _close(self, reason: CloseReason) -> Completed:
        current, self._open = self._open, None
        assert current is not None
        file = ArchiveFile(
            self.topic,
            self.partition,
            current.first_offset,
            current.last_offset,
            current.bucket_ms,
            self.fmt,
        )
        try:
            size = current.writer.finish()
            self.store.publish(current.partial, file)
        except BaseException:
            # Not final: the records must be written again, from the file's first one.
            current.partial.unlink(missing_ok=True)
            self.next_offset = current.first_offset
            raise
        return Completed(
            file, reason, current.records, size, dict(current.undecodable), current.late
        )
