"""Which fetched records of a partition a step may be handed: exactly the next ones.

A consumer's fetch position moves ahead when records are fetched, not when they are
processed. Records fetched and then not handed over (a fetch dropped because a rebalance
began, a batch refused because its partition had not opened, a fetch that was already in
flight when the consumer seeked) leave the position past them; a seek that should undo
that is not always one (aiokafka does not seek a partition without a committed offset),
and a fetch in flight during a seek may still deliver records from before it. Each of
these lost the first records of a partition around a rebalance.

So the batch consumer does not trust positions. Per partition it knows the next offset
the step must be handed: where the last handed batch ended, or where the consumer was
last told to start (a seek, or the committed offset after a rebalance: offset 0 when
nothing was committed yet, as the group's ``auto.offset.reset=earliest`` means).
Fetched records are admitted only as the continuation of that offset: what was handed
already is trimmed, and records that start *after* it are refused and the consumer is
sent back to it. Offsets can be genuinely absent (retention deleted them, or the broker
skips a transaction marker): when the broker answers the rewind with the same first
offset again, the hole is real and is admitted as a gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

Partition = TypeVar("Partition")


@dataclass(frozen=True, slots=True)
class Admission:
    """What to do with a partition's fetched records (offsets ``first``..``last``).

    ``start``: hand over the records from this offset on (None: none of them).
    ``rewind``: refuse them all and seek the partition back to this offset.
    ``gap``: offsets ``gap[0]``..``gap[1]`` do not exist (inclusive; record the gap)."""

    start: int | None = None
    rewind: int | None = None
    gap: tuple[int, int] | None = None


class ReadPositions(Generic[Partition]):
    """The next offset to hand over, per partition (see the module docstring)."""

    def __init__(self) -> None:
        self._next: dict[Partition, int] = {}
        # The last refused skip per partition (expected offset, first offset fetched).
        self._refused: dict[Partition, tuple[int, int]] = {}

    def next(self, partition: Partition) -> int | None:
        """The offset the partition's next handed record must have (None: not known)."""
        return self._next.get(partition)

    def start_at(self, partition: Partition, offset: int) -> None:
        """The consumer was told to read ``partition`` from ``offset`` on (a seek)."""
        if self._next.get(partition) != offset:
            self._refused.pop(partition, None)
        self._next[partition] = offset

    def handed(self, partition: Partition, last: int) -> None:
        """Records up to ``last`` were handed to the step."""
        self._next[partition] = last + 1
        self._refused.pop(partition, None)

    def forget(self, partition: Partition) -> None:
        """The partition is no longer this consumer's."""
        self._next.pop(partition, None)
        self._refused.pop(partition, None)

    def admit(self, partition: Partition, first: int, last: int) -> Admission:
        """What to hand over of fetched records with offsets ``first``..``last``."""
        expected = self._next.get(partition)
        if expected is None or first == expected:
            return Admission(start=first)
        if first < expected:
            # Fetched again after a seek back: hand over only what was not handed yet.
            return Admission(start=expected) if last >= expected else Admission()
        if self._refused.get(partition) == (expected, first):
            # The broker answered the rewind with the same records: the hole is real.
            return Admission(start=first, gap=(expected, first - 1))
        self._refused[partition] = (expected, first)
        return Admission(rewind=expected)
