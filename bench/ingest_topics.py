"""Reading bench/ingest.py's topics: their ends, output spans by broker time, commits."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, TopicPartition


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in partitions
    }
    consumer.close()
    return ends


def output_span(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records in ``topic`` and seconds between the first and last record timestamps."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    ends = end_offsets(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    count, first, last = 0, float("inf"), 0.0
    while count < sum(ends.values()):
        for message in consumer.consume(10_000, timeout=1.0):
            stamp = message.timestamp()[1] / 1000
            first, last = min(first, stamp), max(last, stamp)
            count += 1
    consumer.close()
    return count, last - first


class CommitWatch:
    """Polls a group's committed offsets against the inputs' ends with one consumer."""

    def __init__(self, bootstrap: str, group: str, topics: list[str]) -> None:
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        self.bootstrap = bootstrap
        self.topics = topics
        self.ends: dict[str, dict[int, int]] = {}

    def done(self) -> bool:
        wanted = []
        for topic in self.topics:
            # events.clean grows until preprocess is done: its ends are read each time.
            ends = self.ends.get(topic) or end_offsets(self.bootstrap, topic)
            wanted += [(topic, p, end) for p, end in ends.items() if end]
        committed = self.consumer.committed(
            [TopicPartition(t, p) for t, p, _ in wanted], timeout=30
        )
        return all(tp.offset >= end for tp, (_, _, end) in zip(committed, wanted, strict=True))

    def close(self) -> None:
        self.consumer.close()


def first_timestamp(bootstrap: str, topic: str) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    ends = end_offsets(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p]])
    first = float("inf")
    seen: set[int] = set()
    while len(seen) < sum(1 for p in ends if ends[p]):
        for message in consumer.consume(100, timeout=1.0):
            if message.partition() not in seen:
                seen.add(message.partition())
                first = min(first, message.timestamp()[1] / 1000)
    consumer.close()
    return first
