"""Outputs of a batch agent, produced as per-partition record batches.

Sending records one by one through Faust (``Topic.send``, ``Table`` changelog writes)
creates a future, a pending-message tuple and an accumulator entry per record; in the
ingest profile that was about a third of the worker's time. A batch agent instead
appends its outputs to aiokafka record batches (``create_batch``/``send_batch``) on
Faust's own producer, one batch per destination partition, and gets one delivery future
per record batch. Faust's producer flush before every offset commit covers these
batches too.

Partitions are chosen like every other producer of streamlearn: murmur2 of the key bytes
(the Java clients' and aiokafka's default partitioner), or an explicit partition.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.transport.drivers import aiokafka as faust_aiokafka

from streamlearn.agents.exceptions import AgentConfigurationError

# Key → partition is cached per topic (a user's events repeat); bounded memory.
MAX_CACHED_KEYS = 200_000


class OutputBatches:
    """The records one handler call produces, grouped by (topic, partition)."""

    def __init__(self, producer: BatchProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self.records = 0

    def add(self, topic: str, key: bytes | None, value: bytes | None, partition: int) -> None:
        destination = (topic, partition)
        batch = self._open.get(destination)
        if batch is None:
            batch = self._open[destination] = self.producer.new_batch()
        if batch.append(key=key, value=value, timestamp=None) is None:
            # Full: queue it and start another (an empty batch always takes one record).
            self._full.append((topic, partition, batch))
            batch = self._open[destination] = self.producer.new_batch()
            batch.append(key=key, value=value, timestamp=None)
        self.records += 1

    async def to_topic(self, topic: str) -> Callable[[bytes | None, bytes | None], None]:
        """``add(key, value)`` for ``topic``, partitioned by key."""
        partition_of = await self.producer.partitioner(topic)
        add = self.add

        def add_keyed(key: bytes | None, value: bytes | None) -> None:
            add(topic, key, value, partition_of(key))

        return add_keyed

    async def send(self) -> list[Awaitable[Any]]:
        """Hand every batch to the producer; returns their delivery futures."""
        batches = self._full + [(t, p, batch) for (t, p), batch in self._open.items()]
        self._full, self._open = [], {}
        return [await self.producer.send_batch(t, p, batch) for t, p, batch in batches]


class BatchProducer:
    """Per-partition record batches on the Faust app's producer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._partition_counts: dict[str, int] = {}
        self._key_partitions: dict[str, dict[bytes, int]] = {}

    def _aiokafka_producer(self) -> Any:
        producer = self.app.producer
        if not isinstance(producer, faust_aiokafka.Producer):
            raise AgentConfigurationError(
                f"batch agents need Faust's aiokafka producer, not {type(producer).__name__}"
            )
        return producer._ensure_producer()

    async def partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            partitions = await self._aiokafka_producer().partitions_for(topic)
            count = self._partition_counts[topic] = len(partitions)
        return count

    async def partitioner(self, topic: str) -> KeyPartitioner:
        return KeyPartitioner(
            await self.partition_count(topic), self._key_partitions.setdefault(topic, {})
        )

    def batches(self) -> OutputBatches:
        return OutputBatches(self)

    def new_batch(self) -> Any:
        return self._aiokafka_producer().create_batch()

    async def send_batch(self, topic: str, partition: int, batch: Any) -> Awaitable[Any]:
        future: Awaitable[Any] = await self._aiokafka_producer().send_batch(
            batch, topic, partition=partition
        )
        return future


class KeyPartitioner:
    """murmur2(key) mod partitions, as Kafka's default partitioner, with a bounded cache."""

    def __init__(self, partitions: int, cache: dict[bytes, int]) -> None:
        self.partitions = partitions
        self._cache = cache

    def __call__(self, key: bytes | None) -> int:
        if key is None:
            # Kafka's default partitioner spreads records without a key too.
            return random.randrange(self.partitions)  # noqa: S311 (spreading, not secrecy)
        partition = self._cache.get(key)
        if partition is None:
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
            partition = self._cache[key] = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        return partition
