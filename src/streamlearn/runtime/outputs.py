"""Outputs and state changes of a batch, produced as per-partition record batches.

Sending records one by one through Faust (``Topic.send``, ``Table`` changelog writes)
creates a future, a pending-message tuple and an accumulator entry per record; in the
ingest profile that was about a third of the worker's time. The runtime instead appends
a batch's records to aiokafka record batches (``create_batch``/``send_batch``) on Faust's
own producer, one per destination partition, and gets one delivery future per record
batch. Faust's producer flush before every offset commit covers these batches too.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust

from streamlearn.runtime.faust_internals import aiokafka_producer


class OutputBatches:
    """The records one checkpoint phase produces, grouped by (topic, partition)."""

    def __init__(self, producer: BatchProducer) -> None:
        self.producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self.records = 0

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
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

    async def send(self) -> list[Awaitable[Any]]:
        """Hand every batch to the producer; returns their delivery futures."""
        batches = self._full + [(t, p, batch) for (t, p), batch in self._open.items()]
        self._full, self._open = [], {}
        return [await self.producer.send_batch(t, p, batch) for t, p, batch in batches]


class BatchProducer:
    """Per-partition record batches on the Faust app's producer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def batches(self) -> OutputBatches:
        return OutputBatches(self)

    def new_batch(self) -> Any:
        return aiokafka_producer(self.app.producer).create_batch()

    async def send_batch(self, topic: str, partition: int, batch: Any) -> Awaitable[Any]:
        future: Awaitable[Any] = await aiokafka_producer(self.app.producer).send_batch(
            batch, topic, partition=partition
        )
        return future
