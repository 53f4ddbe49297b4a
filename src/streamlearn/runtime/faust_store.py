"""A Faust table store that keeps each changelog partition's state apart.

Faust's memory store is one dict for every partition a worker holds, active and standby,
and forgets which partition a key came from once the worker writes it. A step's state is
partition-scoped (:mod:`streamlearn.runtime.step`): this store keeps one
:class:`~streamlearn.runtime.state.PartitionState` per changelog partition, fills it from
the changelog records of that partition when Faust recovers or follows a standby, and
clears a partition when it is (re)assigned, before recovery writes it again: a stale key
this worker held before the partition went away (whose tombstone compaction may have
removed since) cannot survive.

Faust writes nothing through the store: the runtime reads and writes the partition states
and produces their changelog records itself, after each batch's outputs. Keys and values
are the runtime's own encoding (UTF-8 keys, JSON values), read here from the raw record.

Registered as the ``streamlearn-memory://`` store through the ``faust.stores`` entry
point in pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from faust.stores.base import Store
from faust.types import TP, EventT

from streamlearn.runtime.state import PartitionState

STORE_URL = "streamlearn-memory://"


class PartitionedStore(Store[Any, Any]):
    """Per-partition state of one store of one step (see the module docstring)."""

    def __post_init__(self) -> None:
        # Faust's table API maps over `data`; the runtime never goes through it.
        self.data: dict[Any, Any] = {}
        self.held: dict[int, PartitionState] = {}
        self.active: frozenset[int] = frozenset()
        """Partitions whose recovery completed and that this worker owns."""

    def partition(self, partition: int) -> PartitionState:
        state = self.held.get(partition)
        if state is None:
            state = self.held[partition] = PartitionState()
        return state

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        for event in batch:
            message = event.message
            if message.key is not None:  # the runtime writes every record with a key
                self.partition(message.partition).apply(message.key, message.value)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        self.active = frozenset()
        changelog = self.table.changelog_topic.get_topic_name()
        for tp in (*revoked, *newly_assigned):
            if tp.topic == changelog:
                self.held.pop(tp.partition, None)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        self.active = frozenset(tp.partition for tp in active_tps)
        kept = self.active | {tp.partition for tp in standby_tps}
        for partition in [p for p in self.held if p not in kept]:
            del self.held[partition]

    def persisted_offset(self, tp: TP) -> int | None:
        return None  # in memory: recovery reads the whole changelog

    def reset_state(self) -> None:
        self.held.clear()

    def _clear(self) -> None:
        self.held.clear()

    async def backup_partition(
        self, tp: TP | int, flush: bool = True, purge: bool = False, keep: int = 1
    ) -> None:
        return None

    def restore_backup(self, tp: TP | int, latest: bool = True, backup_id: int = 0) -> None:
        return None
