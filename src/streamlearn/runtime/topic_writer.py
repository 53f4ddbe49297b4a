"""An output topic's writer: encodes a step's records, puts each in the partition Kafka's
default partitioner gives its key, and keeps what its topic cannot take from the runtime's
sink (:class:`~streamlearn.runtime.records.StepOutputs` rejects it instead)."""

from __future__ import annotations

from collections.abc import Callable

from streamlearn.kafka_clients import AGENT_MAX_REQUEST_BYTES, DEFAULT_MESSAGE_BYTES, key_partition
from streamlearn.runtime.step import Send, Value
from streamlearn.serde import AvroSerde

MAX_CACHED_KEYS = 200_000
"""Key → partition is cached per topic (a user's records repeat); bounded memory."""

Sink = Callable[[str, int, bytes | None, bytes | None], None]
"""``sink(topic name, partition, key, value)``: where a runtime takes encoded outputs."""


class KeyPartitioner:
    """Kafka's default partitioner for one topic's keys, with a bounded cache."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self._cache.get(key)
        if partition is None:
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
            partition = self._cache[key] = key_partition(key, self.partitions)
        return partition


RECORD_OVERHEAD_BYTES = 256
"""What a record batch of one record adds to its key and value (61 bytes of batch header,
a record's varints), with room to spare: a broker compares the batch with the topic's
``max.message.bytes``."""


class TopicWriter:
    """Encodes and partitions the records of one output topic (the serde encodes: an
    encoder compiled for the schema, and fastavro for what it declines, which also explains
    an invalid record). ``max_message_bytes``: the topic's limit, which a record over it
    is not sent past (the broker would refuse it, and the worker stop at every restart)."""

    def __init__(
        self,
        name: str,
        serde: AvroSerde,
        partitions: int,
        max_message_bytes: int = DEFAULT_MESSAGE_BYTES,
    ) -> None:
        self.name = name
        self.serde = serde
        self.partition_of = KeyPartitioner(partitions)
        self.encode = serde.encode
        self.max_message_bytes = min(max_message_bytes, AGENT_MAX_REQUEST_BYTES)

    def fits(self, key: bytes | None, value: bytes | None) -> bool:
        size = len(key or b"") + len(value or b"") + RECORD_OVERHEAD_BYTES
        return size <= self.max_message_bytes

    def sender(self, sink: Sink, too_large: Sink) -> Send:
        """``too_large`` takes a record over the topic's limit instead of ``sink``."""
        name, encode, partition_of = self.name, self.encode, self.partition_of
        limit = self.max_message_bytes - RECORD_OVERHEAD_BYTES

        def send(key: str, value: Value | None) -> None:
            key_bytes = key.encode()
            encoded = None if value is None else encode(value)  # None: a tombstone
            if encoded is not None and len(encoded) + len(key_bytes) > limit:
                too_large(name, partition_of(key_bytes), key_bytes, encoded)
                return
            sink(name, partition_of(key_bytes), key_bytes, encoded)

        return send


__all__ = ("KeyPartitioner", "Sink", "TopicWriter")
