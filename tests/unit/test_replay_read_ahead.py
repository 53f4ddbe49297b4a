"""Reading ahead in a child process gives a replay exactly what reading in-process gives."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from streamlearn.models.configured import configured_spec
from streamlearn.models.online import OnlineLearner
from streamlearn.models.synthetic import ClickWorld
from streamlearn.replay.examples import (
    PreparedRecord,
    ReadCounts,
    decoded_examples,
    prepared_records,
)
from streamlearn.replay.exceptions import PastRetentionError
from streamlearn.replay.positions import PartitionRange, check_retention
from streamlearn.replay.read_ahead import (
    MIN_RECORDS,
    ReadAheadError,
    read_ahead,
    read_ahead_available,
    worth_reading_ahead,
)
from streamlearn.replay.rebuild import ADVANCE_EVERY, learn
from streamlearn.replay.sources import KafkaSource
from streamlearn.runtime.topic_reader import TopicRecord
from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.settings import Settings

pytestmark = pytest.mark.skipif(not read_ahead_available(), reason="needs os.fork")

TOPIC = "ns.training.examples"
KEY = "replay-test-signing-key"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
UNDECODABLE = b"\x00\x00\x00\x00\x01not avro"


class ListSource:
    """A topic held in a list; ``fail_at``: raise that exception instead of that record."""

    name = "list"
    holder = "the list holds"

    def __init__(
        self, records: list[TopicRecord], fail_at: tuple[int, BaseException] | None = None
    ) -> None:
        self.records, self.fail_at = records, fail_at

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        partitions = {r.partition for r in self.records}
        return {p: (0, sum(r.partition == p for r in self.records)) for p in partitions}

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        return dict.fromkeys(partitions)

    def check(self, topic: str, ranges: Iterable[PartitionRange]) -> None:
        check_retention(topic, ranges)

    def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> Iterator[TopicRecord]:
        for index, record in enumerate(self.records):
            if self.fail_at is not None and index == self.fail_at[0]:
                raise self.fail_at[1]
            start, end = ranges.get(record.partition, (0, 0))
            if start <= record.offset < end:
                yield record


def _log(count: int, *, logical_types: bool = False) -> tuple[AvroSerde, list[TopicRecord]]:
    """``count`` click examples over two partitions, one in 97 undecodable, one in 101
    without a value; and the serde a replay decodes them with."""
    registry = InMemoryRegistry()
    writer = AvroSerde(registry, "TrainingExample", f"{TOPIC}-value")
    records, offsets = [], [0, 0]
    for n, example in enumerate(ClickWorld(seed=5).training_examples(count)):
        partition = n % 2
        value: bytes | None = writer.encode(example)
        if n % 97 == 50:
            value = UNDECODABLE
        elif n % 101 == 60:
            value = None
        records.append(TopicRecord(partition, offsets[partition], b"ctr", value, n))
        offsets[partition] += 1
    serde = AvroSerde(registry, "TrainingExample", f"{TOPIC}-value", logical_types=logical_types)
    return serde, records


def _ranges(records: list[TopicRecord]) -> list[PartitionRange]:
    ends: dict[int, int] = {}
    for r in records:
        ends[r.partition] = r.offset + 1
    return [PartitionRange(p, 0, end, 0, end) for p, end in sorted(ends.items())]


def test_the_examples_and_counts_are_those_read_in_process() -> None:
    serde, records = _log(1500)
    source = ListSource(records)
    ranges = _ranges(records)
    serial_counts = ReadCounts()
    serial = list(prepared_records(decoded_examples(source, serde, TOPIC, ranges, serial_counts)))
    ahead_counts = ReadCounts()
    with read_ahead(source, serde, TOPIC, ranges, ahead_counts, fork=True, batch=64) as examples:
        ahead = list(examples)
    assert ahead == serial
    assert ahead_counts == serial_counts
    assert (ahead_counts.read, ahead_counts.undecodable) == (1500, 15 + 15)


def test_a_model_learned_from_examples_read_ahead_is_byte_identical() -> None:
    serde, records = _log(1200)
    source = ListSource(records)
    spec = configured_spec("ctr", Settings())
    in_process = learn(
        OnlineLearner(spec, signing_key=KEY),
        prepared_records(decoded_examples(source, serde, TOPIC, _ranges(records), ReadCounts())),
        TOPIC,
    )
    advanced: list[int] = []
    learner = OnlineLearner(spec, signing_key=KEY)
    counts = ReadCounts()
    with read_ahead(source, serde, TOPIC, _ranges(records), counts, fork=True) as examples:
        learn(learner, examples, TOPIC, advanced.append)
    first, second = in_process.snapshot(NOW), learner.snapshot(NOW)
    assert second["payload"] == first["payload"]
    assert second["offsets"] == first["offsets"]
    assert sum(advanced) == counts.read - counts.undecodable == learner.counters.learned
    assert max(advanced) <= ADVANCE_EVERY


def test_a_failure_while_reading_reaches_the_learner_after_the_examples_before_it() -> None:
    serde, records = _log(600)
    source = ListSource(records, fail_at=(500, PastRetentionError("past retention: gone")))
    seen: list[PreparedRecord] = []
    with (
        read_ahead(source, serde, TOPIC, _ranges(records), ReadCounts(), fork=True, batch=50) as ex,
        pytest.raises(PastRetentionError, match="past retention: gone"),
    ):
        seen.extend(ex)
    before = ListSource(records[:500])
    read_before = decoded_examples(before, serde, TOPIC, _ranges(records), ReadCounts())
    assert seen == list(prepared_records(read_before))


def test_an_exception_that_is_not_the_replays_own_is_described() -> None:
    serde, records = _log(300)
    source = ListSource(records, fail_at=(10, KafkaException("ns.training.examples: no record")))
    with (
        read_ahead(source, serde, TOPIC, _ranges(records), ReadCounts(), fork=True) as examples,
        pytest.raises(ReadAheadError, match=r"KafkaException.*no record"),
    ):
        list(examples)


def test_timestamps_decoded_as_datetimes_stay_in_the_reading_process() -> None:
    # Only what learning reads crosses the pipe (no timestamp): the same prepared records
    # whichever way the serde decodes timestamps.
    serde, records = _log(300, logical_types=True)
    plain = AvroSerde(serde.registry, "TrainingExample", f"{TOPIC}-value", logical_types=False)
    with read_ahead(
        ListSource(records), serde, TOPIC, _ranges(records), ReadCounts(), fork=True
    ) as examples:
        ahead = list(examples)
    serial = decoded_examples(ListSource(records), plain, TOPIC, _ranges(records), ReadCounts())
    assert ahead == list(prepared_records(serial))


def _children() -> set[int]:
    listing = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if not listing.exists():
        pytest.skip("needs /proc")
    return {int(pid) for pid in listing.read_text().split()}


def test_leaving_before_the_end_stops_the_child() -> None:
    serde, records = _log(3000)
    before = _children()
    with read_ahead(
        ListSource(records), serde, TOPIC, _ranges(records), ReadCounts(), fork=True, batch=10
    ) as examples:
        next(iter(examples))
        assert len(_children() - before) == 1
    assert _children() == before


def test_only_kafka_ranges_worth_a_process_are_read_ahead() -> None:
    kafka = KafkaSource(Settings())
    many = [PartitionRange(0, 0, MIN_RECORDS, 0, MIN_RECORDS)]
    few = [PartitionRange(0, 0, MIN_RECORDS - 1, 0, MIN_RECORDS)]
    assert worth_reading_ahead(kafka, many)
    assert not worth_reading_ahead(kafka, few)
    assert not worth_reading_ahead(ListSource([]), many)
