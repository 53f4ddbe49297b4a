"""The lab's log: every record the lab's cluster produced, with the virtual time it was
produced, and the records a consumer of some topics would read from it.

:class:`StampedCluster` is a :class:`~streamlearn.runtime.local.LocalCluster` that stamps
each record produced with the lab's virtual clock and keeps no changelogs (the lab never
restores a partition). :func:`stamped_records` turns its log into :class:`LabRecord`\\ s,
decoded lazily.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlearn.runtime.local import LocalCluster, Message
from streamlearn.runtime.state import Change as StateChange
from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.topology.catalogue import TopicCatalogue


@dataclass(frozen=True)
class LabRecord:
    """One record of a topic with the virtual time it was produced; :attr:`value` is what a
    consumer decodes, decoded when first read (decoding every record of a long run would
    add about half the run's time, for records mostly never looked at)."""

    at_ms: int
    topic: str
    key: str
    partition: int
    offset: int
    raw: bytes | None
    """The value's bytes as produced (framed Avro)."""
    serde: AvroSerde = field(repr=False, compare=False)

    @functools.cached_property
    def value(self) -> dict[str, Any]:
        """The decoded value (empty for a record without one)."""
        return {} if self.raw is None else self.serde.decode(self.raw)


class _Discarded(dict[tuple[str, str, int], list[StateChange]]):
    """Changelogs that keep nothing: the lab never restores a partition, and a run's
    changelog records (every state write, as JSON) would take gigabytes."""

    def setdefault(
        self, key: tuple[str, str, int], default: list[StateChange] | None = None, /
    ) -> list[StateChange]:
        return []


class StampedCluster(LocalCluster):
    """A local cluster that remembers when (virtual ms, :attr:`clock_ms` at the time) and in
    which order each record was produced: ``log[i]`` is the i-th record produced, with its
    time. It keeps no changelogs."""

    def __init__(self, catalogue: TopicCatalogue, registry: InMemoryRegistry, partitions: int):
        super().__init__(catalogue, registry, partitions, changelogs=_Discarded())
        self.clock_ms = 0
        self.log: list[tuple[int, Message]] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Message:
        message = super().produce(topic, key, value, partition, timestamp_ms)
        self.log.append((self.clock_ms, message))
        return message

    def at_ms(self) -> dict[tuple[str, int, int], int]:
        """(topic, partition, offset) → the virtual ms each record was produced."""
        return {(m.topic, m.partition, m.offset): ms for ms, m in self.log}

    def records(self, topics: Sequence[str]) -> list[LabRecord]:
        """Every record of ``topics``, ordered by (virtual ms produced, the topic's place in
        ``topics``, order produced)."""
        order = {topic: index for index, topic in enumerate(topics)}
        serdes: dict[str, AvroSerde] = {
            topic: self.catalogue.topic(topic).serde(self.registry) for topic in topics
        }
        chosen = [
            (ms, order[m.topic], sequence, m)
            for sequence, (ms, m) in enumerate(self.log)
            if m.topic in order
        ]
        chosen.sort(key=lambda item: item[:3])
        return [
            LabRecord(
                ms,
                m.topic,
                m.key.decode() if m.key is not None else "",
                m.partition,
                m.offset,
                m.value,
                serdes[m.topic],
            )
            for ms, _, _, m in chosen
        ]
