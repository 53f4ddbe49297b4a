"""Read a topic from its start to its end now, without a consumer group (blocking)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

READ_TIMEOUT_S = 60.0
MAX_RECORD_BYTES = 16 * 1024 * 1024  # model.state's snapshots: several MB each


def read_to_end(settings: Settings, topic: str) -> Iterator[tuple[bytes | None, bytes | None]]:
    """(key, value) of every record of Kafka topic ``topic`` up to the end offsets it has
    when reading starts; raises :class:`KafkaException` past :data:`READ_TIMEOUT_S`."""
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": "streamlearn-topic-reader",  # assigned, never subscribes or commits
                "enable.auto.commit": False,
                "fetch.max.bytes": MAX_RECORD_BYTES * 2,
                "max.partition.fetch.bytes": MAX_RECORD_BYTES,
            },
        )
    )
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in partitions}  # fmt: skip
        remaining = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in remaining])
        deadline = time.monotonic() + READ_TIMEOUT_S
        while remaining:
            if time.monotonic() > deadline:
                raise KafkaException(f"{topic}: not read to its end in {READ_TIMEOUT_S:.0f}s")
            for message in consumer.consume(100, timeout=0.5):
                if message.error() is not None:
                    raise KafkaException(message.error())
                partition, offset = message.partition(), message.offset()
                if partition not in remaining or offset is None or offset >= ends[partition]:
                    continue
                if offset + 1 >= ends[partition]:
                    remaining.discard(partition)
                yield message.key(), message.value()
    finally:
        consumer.close()
