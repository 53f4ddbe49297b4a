"""Where a replay reads a topic's records: Kafka, or the archive's files followed by Kafka.

Both give the records of offset ranges as :class:`TopicRecord` (key, value bytes, record
timestamp), each partition's in offset order, so everything downstream of the read (the
learner's decoding, the copy into a shadow namespace) is the same code whatever the
source. The archive keeps values decoded with their writer schema; written back with that
schema behind the same wire-format header they give the bytes Kafka held (the archive's
round-trip property, docs/archive.md), and undecodable values were kept as their bytes.

``--source archive`` reads, per partition, what the archive's final files hold of a range
and the rest from Kafka: history past retention plus whatever was produced since the
last archived file, as one range. A range that neither holds all of is refused before
anything is read, naming the offsets missing.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import fastavro

from streamlearn.archive import read_archive
from streamlearn.archive.decode import WriterDecoder, WriterSchemaSource
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import HOUR_MS
from streamlearn.archive.reader import ArchivedRecord, list_archive
from streamlearn.archive.storage import ArchiveStore, describe_root
from streamlearn.archive.topic_ids import OtherTopic, live_topic_id, recorded_topic_id
from streamlearn.replay.exceptions import PastRetentionError, ReplayError
from streamlearn.replay.positions import PartitionRange, check_retention
from streamlearn.runtime import topic_reader
from streamlearn.runtime.topic_reader import TopicRecord
from streamlearn.serde.wire import frame
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

Ranges = Mapping[int, tuple[int, int]]
"""partition → offsets ``[start, end)``."""


class RecordSource(Protocol):
    name: str
    """``kafka`` or ``archive`` (recorded in manifests)."""
    holder: str
    """Who holds the offsets a plan shows ("the log holds")."""

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        """partition → (first offset the source holds, end offset) of Kafka topic ``topic``."""
        ...

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        """partition → offset of its first record at or after ``timestamp_ms`` (None: none)."""
        ...

    def check(self, topic: str, ranges: Iterable[PartitionRange]) -> None:
        """Raise :class:`PastRetentionError` when the source does not hold a range whole."""
        ...

    def read(self, topic: str, ranges: Ranges) -> Iterator[TopicRecord]:
        """The records of ``ranges``, each partition's in offset order."""
        ...


@dataclass
class KafkaSource:
    """The topic as Kafka holds it now."""

    settings: Settings
    name: str = "kafka"
    holder: str = "the log holds"

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return topic_reader.end_offsets(self.settings, topic)

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        return topic_reader.offsets_for_time(self.settings, topic, partitions, timestamp_ms)

    def check(self, topic: str, ranges: Iterable[PartitionRange]) -> None:
        check_retention(topic, ranges)  # the ranges' log_start is Kafka's

    def read(self, topic: str, ranges: Ranges) -> Iterator[TopicRecord]:
        return topic_reader.read_ranges(self.settings, topic, ranges)

    def topic_id(self, topic: str) -> str:
        """Kafka's id of the topic (a recreated topic has a new one)."""
        return live_topic_id(self.settings, topic)


@dataclass(frozen=True)
class Extent:
    """The offsets ``[first, next)`` a partition's final archive files cover, and the
    offsets between two files that no file holds (``[start, end)`` each)."""

    first: int
    next: int
    holes: tuple[tuple[int, int], ...] = ()


@dataclass
class ArchiveSource:
    """The archive's files under ``root``, then Kafka after the last archived offset."""

    settings: Settings
    registry: WriterSchemaSource
    root: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    name: str = "archive"
    holder: str = "the archive's files and the log hold"

    def __post_init__(self) -> None:
        # A root that is not there would read as an archive without files: Kafka alone.
        ArchiveStore(self.root, storage_options=dict(self.storage_options)).require_root()
        self.kafka = KafkaSource(self.settings)
        self._decoder = WriterDecoder(self.registry)
        self._extents: dict[str, dict[int, Extent]] = {}
        self._ids_checked: set[str] = set()

    def extents(self, topic: str) -> dict[int, Extent]:
        """partition → what its final files cover."""
        known = self._extents.get(topic)
        if known is not None:
            return known
        extents: dict[int, Extent] = {}
        for file in list_archive(self.root, topic, self.storage_options):  # by offset
            seen = extents.get(file.partition)
            if seen is None:
                extents[file.partition] = Extent(file.first_offset, file.next_offset)
                continue
            holes = seen.holes
            if file.first_offset > seen.next:
                holes += ((seen.next, file.first_offset),)
            extents[file.partition] = Extent(seen.first, max(seen.next, file.next_offset), holes)
        if not extents:
            # As a missing root is refused: the replay would read Kafka alone.
            raise ReplayError(
                f"the archive at {describe_root(self.root)} holds no file of {topic}: a "
                "replay from it would read Kafka alone (is the root right? Without "
                "--source archive a replay reads Kafka)"
            )
        self._extents[topic] = extents
        return extents

    def _log_watermarks(self, topic: str, extents: dict[int, Extent]) -> dict[int, tuple[int, int]]:
        """Kafka's watermarks, refused when a partition's log ends before its files do: the
        files are of an earlier topic of the same name (deleted and recreated, or Kafka's
        data wiped, while the archive stayed), and reading them for the new log's offsets
        would give another log's records in their place."""
        self._check_topic_id(topic)
        watermarks = self.kafka.watermarks(topic)
        for partition, (_, high) in sorted(watermarks.items()):
            extent = extents.get(partition)
            if extent is not None and high < extent.next:
                raise ReplayError(
                    f"{topic}[{partition}]: the archive's files go to offset {extent.next} "
                    f"but Kafka's log ends at {high}: the topic was recreated (or Kafka's data "
                    f"wiped) since those files were written, and they are not this log's "
                    f"records. Move the topic's old files out of the root (or replay "
                    f"without --source archive)"
                )
        return watermarks

    def _check_topic_id(self, topic: str) -> None:
        """Refuse files recorded as another topic id's than Kafka's topic of that name: a
        topic deleted and recreated, even one grown past the old files' offsets (which the
        offsets check cannot see). An archive without the marker (written before the
        archive recorded ids) is read, with a warning."""
        if topic in self._ids_checked:
            return
        store = ArchiveStore(self.root, storage_options=dict(self.storage_options))
        try:
            recorded = recorded_topic_id(store, topic)
        except ArchiveError as exc:
            raise ReplayError(str(exc)) from None
        if recorded is None:
            log.warning(
                "replay: the archive's files of %s carry no topic id (written before the "
                "archive recorded one): only their offsets say they are this topic's",
                topic,
            )
        else:
            try:
                live = self.kafka.topic_id(topic)
            except ArchiveError as exc:
                raise ReplayError(str(exc)) from None
            if live != recorded:
                found = OtherTopic(topic, recorded, live, store.describe())
                raise ReplayError(
                    found.message(
                        f"Move the topic's old directory ({store.describe()}/{topic}) out of "
                        "the root, or replay without --source archive"
                    )
                )
        self._ids_checked.add(topic)

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        extents = self.extents(topic)
        found = {}
        for partition, (low, high) in self._log_watermarks(topic, extents).items():
            extent = extents.get(partition)
            found[partition] = (low if extent is None else min(low, extent.first), high)
        return found

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        # A record at or after the time is in a file of its hour or a later one (a
        # partition's buckets never move back): earlier files are not opened.
        extents = self.extents(topic)
        files = list_archive(self.root, topic, self.storage_options)
        found: dict[int, int | None] = {}
        in_kafka = []
        log_starts: dict[int, int] | None = None
        for partition in partitions:
            if partition not in extents:
                in_kafka.append(partition)
                continue
            later = [
                f.first_offset
                for f in files
                if f.partition == partition and f.bucket_ms + HOUR_MS > timestamp_ms
            ]
            offset = None
            if later:
                for record in self._archived(topic, partition, min(later), extents[partition].next):
                    if record.timestamp_ms is not None and record.timestamp_ms >= timestamp_ms:
                        offset = record.offset
                        break
            if offset is None:
                in_kafka.append(partition)
                continue
            if log_starts is None:
                log_starts = {p: low for p, (low, _) in self.kafka.watermarks(topic).items()}
            if log_starts.get(partition, offset) < offset:
                # The log holds records before the one found: one of them may be of that
                # time too, whether the archive starts later than the log (its old files
                # expired, or `--start-at latest`) or record times are not in offset order
                # (CreateTime: each producer's clock), which makes the files' answer later
                # than their first record without any of theirs being earlier.
                earlier = self.kafka.offsets_for_time(topic, [partition], timestamp_ms)
                in_log = earlier.get(partition)
                if in_log is not None:
                    offset = min(offset, in_log)
            found[partition] = offset
        if in_kafka:
            found.update(self.kafka.offsets_for_time(topic, in_kafka, timestamp_ms))
        return found

    def check(self, topic: str, ranges: Iterable[PartitionRange]) -> None:
        extents = self.extents(topic)
        kafka = self._log_watermarks(topic, extents)
        missing = []
        for r in ranges:
            if not r.count:
                continue
            low = kafka[r.partition][0]
            extent = extents.get(r.partition)
            if extent is None:
                if r.start < low:
                    missing.append(
                        f"{topic}[{r.partition}] from offset {r.start}: the archive has no "
                        f"file of the partition, the log starts at {low}"
                    )
                continue
            if r.start < extent.first and r.start < low:
                missing.append(
                    f"{topic}[{r.partition}] from offset {r.start}: the archive starts at "
                    f"{extent.first}, the log at {low}"
                )
            # Offsets between two files: a file deleted (streamlearn's producers write no
            # transaction markers, which would leave such gaps too).
            missing += [
                f"{topic}[{r.partition}] offsets {a}..{b - 1}: between two archive files "
                f"(`streamlearn archive ls` lists them) and before the log's start {low}"
                for a, b in extent.holes
                if a < r.end and b > r.start and a < low
            ]
            after = max(r.start, extent.next)
            if after < r.end and after < low:
                missing.append(
                    f"{topic}[{r.partition}] offsets {after}..{low - 1}: after the archive's "
                    f"last file (it ends before {extent.next}) and before the log's start {low}"
                )
        if missing:
            raise PastRetentionError(
                f"past retention: {'; '.join(missing)}. Those records are neither in Kafka "
                "nor in the archive's files"
            )

    def read(self, topic: str, ranges: Ranges) -> Iterator[TopicRecord]:
        extents = self.extents(topic)
        rest: dict[int, tuple[int, int]] = {}
        for partition, (start, end) in sorted(ranges.items()):
            extent = extents.get(partition)
            if extent is not None and start < extent.first:
                # Before the archive's first file (an archive started later than the log,
                # or its old files expired): Kafka's records, when it has them (check()).
                before_files = min(end, extent.first)
                yield from self.kafka.read(topic, {partition: (start, before_files)})
                start = before_files
            if extent is not None and extent.first <= start < extent.next:
                archived_end = min(end, extent.next)
                for hole_start, hole_end in extent.holes:  # offset order
                    if hole_end <= start:
                        continue
                    if hole_start >= archived_end:
                        break
                    # Offsets no file holds: Kafka's records, when it has them (check()).
                    yield from self._from_files(topic, partition, start, hole_start)
                    kafka_from, start = max(start, hole_start), min(hole_end, archived_end)
                    yield from self.kafka.read(topic, {partition: (kafka_from, start)})
                yield from self._from_files(topic, partition, start, archived_end)
                start = archived_end
            if start < end:
                rest[partition] = (start, end)
        yield from self.kafka.read(topic, rest)

    def _from_files(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[TopicRecord]:
        if start < end:
            for record in self._archived(topic, partition, start, end):
                yield self._as_kafka_record(record)

    def _archived(
        self, topic: str, partition: int, start: int, end: int
    ) -> Iterator[ArchivedRecord]:
        return read_archive(
            self.root,
            topic,
            partitions=[partition],
            start_offsets={partition: start},
            end_offsets={partition: end},
            storage_options=self.storage_options,
        )

    def _as_kafka_record(self, record: ArchivedRecord) -> TopicRecord:
        """The record as Kafka held it: the value's bytes rebuilt from its writer schema."""
        if record.raw is not None or record.value is None or record.schema_id is None:
            value = record.raw
        else:
            writer = self._decoder.writer_schema(record.schema_id)
            body = io.BytesIO()
            fastavro.schemaless_writer(body, writer.decoder, record.value)
            value = frame(record.schema_id, body.getvalue())
        return TopicRecord(
            record.partition,
            record.offset,
            record.key,
            value,
            record.timestamp_ms if record.timestamp_ms is not None else 0,
        )
