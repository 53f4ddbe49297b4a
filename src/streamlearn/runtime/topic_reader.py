"""Read a topic (or offset ranges of its partitions) without a consumer group (blocking),
as a ``read_committed`` consumer sees it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings
from streamlearn.topology.namespace import Namespace

READ_TIMEOUT_S = 60.0
"""How long reading may go without a record before it fails."""
SETTLE_S = 15.0
"""How long a new topic's partitions may take to get a leader."""
SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
}
MAX_RECORD_BYTES = 16 * 1024 * 1024  # model.state's snapshots: several MB each
READER_GROUP = "streamlearn-topic-reader"
"""The readers' group id before the namespace (assigned, never subscribes or commits). In
the namespace, as the topics, so that the ACL letting one deployment's learner use it does
not reach another deployment's on the same cluster."""


@dataclass(frozen=True, slots=True)
class TopicRecord:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        confluent_config(
            settings,
            **{
                "group.id": Namespace(settings.topic_prefix).group(READER_GROUP),
                "enable.auto.commit": False,
                # librdkafka's default, said out loud: what a transactional consumer
                # downstream would see (a replay, the chaos invariants), never an aborted
                # transaction's records.
                "isolation.level": "read_committed",
                "fetch.max.bytes": MAX_RECORD_BYTES * 2,
                "max.partition.fetch.bytes": MAX_RECORD_BYTES,
            },
        )
    )


def read_ranges(
    settings: Settings, topic: str, ranges: Mapping[int, tuple[int, int]]
) -> Iterator[TopicRecord]:
    """Every record of Kafka topic ``topic`` in ``ranges`` (partition → [start, end)
    offsets), each partition's in offset order; raises :class:`KafkaException` when
    :data:`READ_TIMEOUT_S` pass without a record. Offsets the log no longer has (retention,
    compaction) are simply not there: the caller checks ranges against the log first."""
    remaining = {p: end for p, (start, end) in ranges.items() if end > max(start, 0)}
    if not remaining:
        return
    consumer = _consumer(settings)
    try:
        consumer.incremental_assign([TopicPartition(topic, p, ranges[p][0]) for p in remaining])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while remaining:
            messages = consumer.consume(500, timeout=0.5)
            if not messages and time.monotonic() > deadline:
                raise KafkaException(f"{topic}: no record for {READ_TIMEOUT_S:.0f}s")
            for message in messages:
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition, offset = message.partition(), message.offset()
                end = None if partition is None else remaining.get(partition)
                if partition is None or end is None or offset is None or offset >= end:
                    continue
                deadline = time.monotonic() + READ_TIMEOUT_S
                if offset + 1 >= end:
                    del remaining[partition]
                    consumer.incremental_unassign([TopicPartition(topic, partition)])
                yield TopicRecord(
                    partition, offset, message.key(), message.value(), message.timestamp()[1]
                )
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
    """partition → (first offset the log has, end offset) of Kafka topic ``topic`` now.
    A topic created moments ago may have no leader yet: asked again for a while."""
    consumer = _consumer(settings)
    deadline = time.monotonic() + SETTLE_S
    try:
        while True:
            try:
                partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
                return {
                    p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                    for p in sorted(partitions)
                }
            except KafkaException as exc:
                error = exc.args[0]
                settling = error.retriable() or error.code() in SETTLING
                if not settling or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def read_to_end(settings: Settings, topic: str) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of Kafka topic ``topic`` up to the end offsets it has
    when reading starts."""
    ranges = {p: (OFFSET_BEGINNING, end) for p, (_, end) in end_offsets(settings, topic).items()}
    for record in read_ranges(settings, topic, ranges):
        yield record.key, record.value


def offsets_for_time(
    settings: Settings, topic: str, partitions: Iterable[int], timestamp_ms: int
) -> dict[int, int | None]:
    """partition → offset of its first record with a timestamp at or after
    ``timestamp_ms`` (None: no such record yet)."""
    consumer = _consumer(settings)
    try:
        asked = [TopicPartition(topic, p, timestamp_ms) for p in partitions]
        found = consumer.offsets_for_times(asked, timeout=30)
        return {tp.partition: tp.offset if tp.offset >= 0 else None for tp in found}
    finally:
        consumer.close()
