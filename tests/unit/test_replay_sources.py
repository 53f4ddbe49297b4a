"""``--source archive``: the archive's files, then Kafka (a stand-in here), as one log."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.partition import Limits, PartitionArchiver
from streamlearn.archive.storage import ArchiveStore
from streamlearn.archive.topic_ids import record_topic_id
from streamlearn.replay.exceptions import PastRetentionError, ReplayError
from streamlearn.replay.positions import PartitionRange, check_retention, resolve
from streamlearn.replay.sources import ArchiveSource
from streamlearn.runtime.topic_reader import TopicRecord
from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.settings import Settings

TOPIC = "ns.training.examples"
START_MS = int(datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp() * 1000)
MINUTE_MS = 60_000
SCHEMA = {
    "type": "record",
    "name": "Row",
    "namespace": "test",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tag", "type": ["null", "string"], "default": None},
    ],
}


class FakeKafka:
    """Kafka holding offsets ``[low, len(records))`` of partition 0."""

    def __init__(self, records: list[TopicRecord], low: int) -> None:
        self.records, self.low = records, low
        self.reads: list[tuple[int, int]] = []

    topic_id_now = "live-topic-id"
    """Kafka's id of the topic (a recreated topic has a new one)."""

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return {0: (self.low, len(self.records))}

    def topic_id(self, topic: str) -> str:
        return self.topic_id_now

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        found = [r.offset for r in self.records[self.low :] if r.timestamp_ms >= timestamp_ms]
        return dict.fromkeys(partitions, found[0] if found else None)

    def check(self, topic: str, ranges: Iterable[PartitionRange]) -> None:
        check_retention(topic, ranges)

    def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> Iterator[TopicRecord]:
        for partition, (start, end) in ranges.items():
            assert partition == 0
            assert start >= self.low, "reading what Kafka no longer has"
            self.reads.append((start, end))
            yield from self.records[start:end]


def _log(count: int) -> tuple[InMemoryRegistry, list[TopicRecord]]:
    registry = InMemoryRegistry()
    serde = AvroSerde(registry, SCHEMA, f"{TOPIC}-value")
    records = []
    for n in range(count):
        at = START_MS + n * MINUTE_MS
        tag = None if n % 3 else f"t{n}"
        value = serde.encode({"n": n, "at": datetime.fromtimestamp(at / 1000, UTC), "tag": tag})
        if n == 7:
            value = b"\x00\x00\x00\x00\x63not avro"  # undecodable: archived as its bytes
        records.append(TopicRecord(0, n, f"k{n}".encode(), value, at))
    return registry, records


def _archive(root: Path, registry: InMemoryRegistry, records: list[TopicRecord]) -> None:
    """Archive ``records`` in files of five."""
    archiver = PartitionArchiver(
        TOPIC,
        0,
        None,
        store=ArchiveStore(str(root)),
        decoder=WriterDecoder(registry),
        fmt="avro",
        limits=Limits(max_records=5),
    )
    messages = [
        Message(
            topic=TOPIC,
            partition=0,
            offset=r.offset,
            key=r.key,
            value=r.value,
            timestamp=(TIMESTAMP_CREATE_TIME, r.timestamp_ms),
        )
        for r in records
    ]
    archiver.add(messages)
    archiver.finish()


def _source(root: Path, registry: InMemoryRegistry, kafka: FakeKafka) -> ArchiveSource:
    source = ArchiveSource(Settings(), registry, str(root))
    source.kafka = kafka  # type: ignore[assignment]
    return source


def _files(root: Path) -> list[Path]:
    return sorted((root / TOPIC).rglob("*.avro"))


def _read(source: ArchiveSource, start: int, end: int) -> list[TopicRecord]:
    (planned,) = resolve(source, TOPIC, {0: start}, {0: end})
    source.check(TOPIC, [planned])
    return list(source.read(TOPIC, {0: (start, end)}))


def test_files_then_kafka_give_the_records_kafka_held_byte_for_byte(tmp_path: Path) -> None:
    registry, records = _log(30)
    _archive(tmp_path, registry, records[:20])
    kafka = FakeKafka(records, low=25)
    source = _source(tmp_path, registry, kafka)
    assert source.watermarks(TOPIC) == {0: (0, 30)}
    with pytest.raises(PastRetentionError, match=r"offsets 20\.\.24: after the archive"):
        _read(source, 0, 30)
    assert _read(source, 3, 19) == records[3:19], "a range inside the files: files only"
    assert kafka.reads == []
    kafka.low = 18
    assert _read(source, 0, 30) == records, "values rebuilt from the writer schema, raw kept"
    assert kafka.reads == [(20, 30)]


def test_an_offset_between_two_files_comes_from_kafka_or_is_refused(tmp_path: Path) -> None:
    registry, records = _log(30)
    _archive(tmp_path, registry, records[:20])
    _files(tmp_path)[2].unlink()  # offsets 10..14
    kafka = FakeKafka(records, low=12)
    source = _source(tmp_path, registry, kafka)
    with pytest.raises(PastRetentionError) as refused:
        _read(source, 0, 30)
    assert f"{TOPIC}[0] offsets 10..14: between two archive files" in str(refused.value)
    assert "before the log's start 12" in str(refused.value)  # (found by a new user)
    assert _read(source, 15, 30) == records[15:], "a range after the hole needs nothing of it"
    kafka.low, kafka.reads = 10, []
    assert _read(source, 2, 30) == records[2:]
    assert kafka.reads == [(10, 15), (20, 30)]
    kafka.reads = []
    assert _read(source, 12, 17) == records[12:17], "a range starting inside the hole"
    assert kafka.reads == [(12, 15)]


def test_a_range_before_the_archive_and_the_log_is_refused(tmp_path: Path) -> None:
    registry, records = _log(30)
    _archive(tmp_path, registry, records[:20])
    _files(tmp_path)[0].unlink()  # offsets 0..4
    source = _source(tmp_path, registry, FakeKafka(records, low=12))
    assert source.watermarks(TOPIC) == {0: (5, 30)}
    (earliest,) = resolve(source, TOPIC, "earliest")
    assert (earliest.start, earliest.end) == (5, 30)
    with pytest.raises(PastRetentionError, match="from offset 0: the archive starts at 5, the log"):
        _read(source, 0, 30)


def test_a_time_is_found_in_the_files_or_else_in_kafka(tmp_path: Path) -> None:
    registry, records = _log(90)  # 09:00 to 10:29, one record a minute
    _archive(tmp_path, registry, records[:70])
    kafka = FakeKafka(records, low=60)
    source = _source(tmp_path, registry, kafka)
    at: Any = datetime(2026, 11, 30, 9, 42, 30, tzinfo=UTC)
    (since,) = resolve(source, TOPIC, at)
    assert (since.start, since.end) == (43, 90)
    later = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)
    (after_files,) = resolve(source, TOPIC, later)
    assert after_files.start == 75, "past the files' newest record: Kafka's offsets-for-times"


def test_records_before_the_archive_s_first_file_come_from_kafka(tmp_path: Path) -> None:
    """An archive started later than the log (`archive run --start-at latest`, or its old
    files expired by a lifecycle rule): Kafka's records before its first file were
    skipped, and a model replayed from 1 record of 1,573 with nothing said."""
    registry, records = _log(30)
    _archive(tmp_path, registry, records[10:25])
    kafka = FakeKafka(records, low=0)
    source = _source(tmp_path, registry, kafka)
    assert source.watermarks(TOPIC) == {0: (0, 30)}
    assert _read(source, 0, 30) == records
    assert kafka.reads == [(0, 10), (25, 30)]
    kafka.reads = []
    assert _read(source, 4, 12) == records[4:12]
    assert kafka.reads == [(4, 10)]


def test_a_time_before_the_archive_s_first_file_is_found_in_kafka(tmp_path: Path) -> None:
    registry, records = _log(90)  # 09:00 to 10:29, one record a minute
    _archive(tmp_path, registry, records[40:70])
    source = _source(tmp_path, registry, FakeKafka(records, low=0))
    at: Any = datetime(2026, 11, 30, 9, 12, 30, tzinfo=UTC)
    (since,) = resolve(source, TOPIC, at)
    assert since.start == 13, "the log's record of that time, not the archive's first"
    (from_the_first,) = resolve(source, TOPIC, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert from_the_first.start == 0


def test_a_time_is_the_earliest_of_the_files_and_the_log_whatever_the_order_of_times(
    tmp_path: Path,
) -> None:
    """Found by a new user: timestamps of CreateTime topics are not in offset order, and
    with an archive starting after the log's start, the files' first record at or after a
    time (not their first record) was taken, Kafka never asked: the log's earlier records
    of that time were left out of the range without a word (offsets 366..406 of 315)."""
    registry, records = _log(90)  # 09:00 to 10:29, one record a minute
    late = records[35]
    records[35] = TopicRecord(0, 35, late.key, late.value, START_MS + 44 * MINUTE_MS + 30_000)
    _archive(tmp_path, registry, records[40:70])
    source = _source(tmp_path, registry, FakeKafka(records, low=30))
    (since,) = resolve(source, TOPIC, datetime(2026, 11, 30, 9, 44, tzinfo=UTC))
    assert since.start == 35, "Kafka's record of 09:44:30, before the archive's of 09:44"


def test_an_archive_without_files_of_the_topic_is_refused(tmp_path: Path) -> None:
    """Found by a new user: `--source archive --root` an empty directory, or a bucket with a
    mistyped prefix, replayed from Kafka alone without a word (a missing bucket or
    directory is refused for that very reason)."""
    registry, records = _log(10)
    source = _source(tmp_path, registry, FakeKafka(records, low=0))
    with pytest.raises(ReplayError, match=f"holds no file of {TOPIC}: a replay from it would"):
        source.watermarks(TOPIC)


def test_files_of_a_topic_before_it_was_recreated_are_refused(tmp_path: Path) -> None:
    """The archive holds offsets 0..19 of a topic since deleted and recreated; the new log
    holds 0..5. The replay planned [0, 6) and read it from the old topic's files: records
    of another log, in place of the new one's, without a word."""
    registry, old = _log(20)
    _archive(tmp_path, registry, old)
    _, new = _log(6)
    source = _source(tmp_path, registry, FakeKafka(new, low=0))
    with pytest.raises(ReplayError) as refused:
        source.watermarks(TOPIC)
    message = str(refused.value)
    assert f"{TOPIC}[0]" in message
    assert "offset 20" in message
    assert "ends at 6" in message
    assert "recreated" in message


def test_files_of_another_topic_id_are_refused_though_the_new_log_is_longer(
    tmp_path: Path,
) -> None:
    """The archive's files (offsets 0..19) are recorded as topic id "old-id"; the topic was
    recreated and has grown to 30 records. The offsets agree, so the replay read 0..19
    from the old topic's files and 20..29 from the new log, as one log."""
    registry, old = _log(20)
    _archive(tmp_path, registry, old)
    record_topic_id(ArchiveStore(str(tmp_path)), TOPIC, "old-id")
    _, new = _log(30)
    kafka = FakeKafka(new, low=0)
    source = _source(tmp_path, registry, kafka)
    with pytest.raises(ReplayError) as refused:
        source.watermarks(TOPIC)
    message = str(refused.value)
    assert TOPIC in message
    assert "topic id old-id" in message
    assert "topic id live-topic-id" in message
    assert "recreated" in message
    assert "without --source archive" in message
    kafka.topic_id_now = "old-id"  # the same topic: read as before
    assert [r.offset for r in _read(_source(tmp_path, registry, kafka), 0, 30)] == list(range(30))
