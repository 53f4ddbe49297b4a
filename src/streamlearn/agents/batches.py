"""Batch agents: a Faust app whose agents can take a partition's records at once.

``@app.batch_agent(topic)`` registers ``async def handler(tp, messages) -> deliveries``:
``messages`` are Faust ``ConsumerMessage`` objects of one partition, in offset order;
``deliveries`` are the pending sends of the batch's outputs (see
:class:`~streamlearn.agents.batch_producer.OutputBatches`). :class:`BatchConsumer`
acknowledges the batch once every delivery completed, and Faust commits acknowledged
offsets after flushing its producer: at-least-once, as Faust's own agents.

State goes through :class:`BatchTable`, a write-back view of a Faust table: reads and
writes hit the table's local store, and :meth:`BatchTable.flush` adds one changelog
record per key changed during the batch to the batch's outputs, in the partition the
table's data belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, ItemsView, Iterator, MutableMapping
from typing import Any

import faust
from faust.types import TableT

from streamlearn.agents.batch_consumer import BatchHandler, Deliveries, check_faust_internals
from streamlearn.agents.batch_producer import BatchProducer, KeyPartitioner, OutputBatches
from streamlearn.agents.exceptions import AgentConfigurationError

_DELETED = object()


class BatchingApp(faust.App):
    """A ``faust.App`` with batch agents (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_faust_internals()
        super().__init__(*args, **kwargs)
        self._batch_handlers: dict[str, BatchHandler] = {}
        self.batch_producer = BatchProducer(self)

    def batch_agent(self, topic: faust.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register a batch handler for every partition of ``topic`` (one handler per topic)."""

        def register(handler: BatchHandler) -> BatchHandler:
            for name in topic.topics:
                if name in self._batch_handlers:
                    raise AgentConfigurationError(f"topic {name} already has a batch agent")
                self._batch_handlers[name] = handler
            # Subscribing through the conductor makes the topic part of the consumer's
            # subscription and of the assignor's co-partitioning, like an agent's topic.
            self.topics.add(topic)
            return handler

        return register

    def batch_handler_for(self, topic: str) -> BatchHandler | None:
        return self._batch_handlers.get(topic)


class BatchTable(MutableMapping[str, Any]):
    """Write-back view of a Faust table: one changelog write per changed key per batch.

    A Faust table sends a changelog record on every assignment; an agent that touches a
    user's counters for each of their events in a batch would send one per event. Here the
    batch works on the table's local store and :meth:`flush` sends the final value (or a
    tombstone) of each changed key. In-place changes of a value must be followed by an
    assignment (as with Faust tables) to be flushed. Needs the in-memory store: a
    persistent store would also need the changelog offsets Faust records per send.
    """

    def __init__(self, table: TableT[str, Any]) -> None:
        if table.app.conf.store.scheme != "memory":
            raise AgentConfigurationError(
                f"BatchTable needs the memory:// store, not {table.app.conf.store}"
            )
        self.table = table
        self._changed: set[str] = set()

    @property
    def _store(self) -> MutableMapping[Any, Any]:
        # Resolved on use: Faust creates a table's store when the app starts.
        store: MutableMapping[Any, Any] = self.table.data
        return store

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value
        self._changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self._store[key]
        self._changed.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    # The generic MutableMapping versions go through __getitem__ and KeyError; these are
    # on every event's path.
    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def items(self) -> ItemsView[str, Any]:
        return self._store.items()

    def __len__(self) -> int:
        return len(self._store)

    def forget_unowned(self, owned: set[int], partitions: int) -> int:
        """Drop, locally and without changelog records, the keys of partitions this worker
        does not own (key-partitioned tables): state written before a rebalance moved its
        partition away must not be acted on here. Recovery brings it back if the
        partition returns. Returns how many keys were dropped."""
        if not self.table.use_partitioner:
            raise AgentConfigurationError("forget_unowned needs a key-partitioned table")
        partition_of = KeyPartitioner(partitions, {})
        store = self._store
        stale = [key for key in store if partition_of(key.encode()) not in owned]
        for key in stale:
            del store[key]
            self._changed.discard(key)
        return len(stale)

    async def flush(self, outputs: OutputBatches, partition: int | None) -> int:
        """Add the changed keys' changelog records to ``outputs``. ``partition`` is the
        partition of the batch; tables with ``use_partitioner`` (or ``partition=None``)
        put each key in the partition murmur2 gives its UTF-8 bytes, i.e. the partition of
        a source topic keyed by the same string."""
        table: Any = self.table  # a faust Table: its serializers are not on TableT
        topic = table.changelog_topic
        name = topic.get_topic_name()
        by_key = (
            await outputs.producer.partitioner(name)
            if table.use_partitioner or partition is None
            else None
        )
        store = self._store
        for key in self._changed:
            key_bytes, _ = topic.prepare_key(key, table.key_serializer)
            value = store.get(key, _DELETED)
            if value is _DELETED:
                value_bytes = None
            else:
                value_bytes, _ = topic.prepare_value(value, table.value_serializer)
            if by_key is not None:
                # The partition of the key's own bytes, as the source topic's producer
                # chose it, not of the serialized key: Faust's default JSON key codec
                # quotes strings, which would put the state in another partition than
                # its user's events (found by the rebalance test: state lost on hand-over).
                partition = by_key(key.encode() if isinstance(key, str) else key)
            assert partition is not None
            outputs.add(name, key_bytes, value_bytes, partition)
        count = len(self._changed)
        self._changed.clear()
        return count


__all__ = ["BatchTable", "BatchingApp", "Deliveries"]
