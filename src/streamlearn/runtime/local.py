"""Steps run in memory: the same checkpoint as in a worker, over topics held in lists.

:class:`LocalCluster` holds what Kafka would: the topics (partitioned like Kafka's default
partitioner does), each step's changelogs and committed offsets. A :class:`LocalWorker`
runs one step over the partitions it is assigned, in batches, with the order every
runtime keeps: the step handles a batch, its outputs are delivered (appended to their
topics), its state changes are written to the changelog, then its offsets are committed.
A worker can be made to crash after any of those phases; a new worker on the same cluster
restores its partitions' state from the changelog and resumes from the committed offsets,
as a worker process does after a SIGKILL. Wall time is virtual (:attr:`LocalWorker.now_ms`),
so ticks and processing-time fields are reproducible.

Used by the contract check (:mod:`streamlearn.runtime.checks`), unit tests, and anything
that wants a step's results from records without a broker.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from streamlearn.kafka_clients import key_partition
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.records import StepOutputs, step_topics
from streamlearn.runtime.state import Change, PartitionState
from streamlearn.runtime.step import Step
from streamlearn.serde import AvroSerde, SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

Phase = Literal["process", "deliver", "state"]
"""Checkpoint phases after which a worker may be made to crash."""


class SimulatedCrashError(Exception):
    """A worker died at the requested point of its checkpoint."""


class Message(NamedTuple):
    """One record of a local topic (a named tuple: the learning lab makes millions, and a
    tuple is built in a third of a frozen dataclass's time)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None
    """The broker's timestamp (epoch ms), as a Kafka consumer reads it; None: none given."""


@dataclass
class LocalCluster:
    """Topics, changelogs and committed offsets, in memory."""

    catalogue: TopicCatalogue
    registry: SchemaSource
    partitions: int = 6
    topics: dict[str, list[list[Message]]] = field(default_factory=dict)
    changelogs: dict[tuple[str, str, int], list[Change]] = field(default_factory=dict)
    """(step, store, partition) → the changelog's records in order."""
    committed: dict[tuple[str, str, int], int] = field(default_factory=dict)
    """(step, topic, partition) → next offset to read (a consumer group per step)."""

    def _partitions(self, topic: str) -> list[list[Message]]:
        logs = self.topics.get(topic)
        if logs is None:  # not setdefault: its default (a list per partition) is built each call
            logs = self.topics[topic] = [[] for _ in range(self.partitions)]
        return logs

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Message:
        """Append a record to ``topic`` (a topology name), in the partition its key gives
        (``timestamp_ms``: the broker's time of it, for steps that compare with it)."""
        logs = self._partitions(topic)
        if partition is None:
            if key is None:
                raise ValueError("a keyless record needs a partition")
            partition = key_partition(key, self.partitions)
        message = Message(topic, partition, len(logs[partition]), key, value, timestamp_ms)
        logs[partition].append(message)
        return message

    def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Message]:
        return self._partitions(topic)[partition][offset : offset + limit]

    def messages(self, topic: str) -> list[Message]:
        """Every record of ``topic``, partition by partition."""
        return [m for log in self._partitions(topic) for m in log]

    def environment(self, settings: Settings, metrics: AgentMetrics) -> StepEnvironment:
        """What a step factory needs, reading this cluster's topics."""
        return StepEnvironment(
            settings=settings,
            metrics=metrics,
            catalogue=self.catalogue,
            registry=self.registry,
            read_topic=lambda topic: [(m.key, m.value) for m in self.messages(topic)],
        )

    def decoded(self, topic: str) -> list[dict[str, Any]]:
        """Every value of ``topic`` decoded with its catalogue serde."""
        serde: AvroSerde = self.catalogue.topic(topic).serde(self.registry)
        return [serde.decode(m.value) for m in self.messages(topic) if m.value is not None]


class _Stores:
    """The :class:`~streamlearn.runtime.step.Stores` of one local worker."""

    def __init__(self, names: Iterable[str], count: int) -> None:
        self.names = tuple(names)
        self.count = count
        self.held: dict[int, dict[str, PartitionState]] = {}

    def of(self, store: str, partition: int) -> MutableMapping[str, Any]:
        return self.held[partition][store]

    def partitions(self) -> frozenset[int]:
        return frozenset(self.held)


class LocalWorker:
    """One step over some partitions of a :class:`LocalCluster`."""

    def __init__(
        self,
        cluster: LocalCluster,
        step: Step,
        *,
        now_ms: int = 0,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.cluster = cluster
        self.step = step
        self.now_ms = now_ms
        self.metrics = metrics or AgentMetrics()
        self.crash_after: tuple[int, Phase] | None = None
        """(n, phase): crash (raise :class:`SimulatedCrashError`) after ``phase`` of this
        worker's ``n``-th checkpoint."""
        self.checkpoints = 0
        """Checkpoints made so far (batches, ticks and closings)."""
        self.state = _Stores(step.stores, cluster.partitions)
        self._positions: dict[tuple[str, int], int] = {}
        self._read_ms: dict[int, int] = {}
        self._pending: list[Message] = []
        inputs, writers, names = step_topics(
            cluster.catalogue, cluster.registry, step.inputs, step.outputs,
            lambda _: cluster.partitions, logical_types=not step.plain_inputs,
            fields=step.input_fields, preparations=step.input_preparations,
            rejections=step.publishes_rejections,
        )  # fmt: skip
        self._inputs, self._writers, self._names = inputs, writers, names
        self._logical = {name: topic for topic, name in names.items()}
        step.bind(self.state, lambda: self.now_ms)

    def _outputs(self) -> StepOutputs:
        def sink(topic: str, partition: int, key: bytes | None, value: bytes | None) -> None:
            self._pending.append(Message(self._logical[topic], partition, -1, key, value))

        return StepOutputs(self._writers, sink, self.step.name, self.metrics,
                           lambda: self.now_ms, self._names,
                           publish_rejections=self.step.publishes_rejections)  # fmt: skip

    # -- assignment ----------------------------------------------------------------------

    def assign(self, partitions: Iterable[int]) -> None:
        """Take ``partitions``: restore their state from the changelog, then resume."""
        for partition in partitions:
            held = self.state.held[partition] = {}
            for store in self.state.names:
                state = held[store] = PartitionState()
                for key, value in self.cluster.changelogs.get(
                    (self.step.name, store, partition), []
                ):
                    state.apply(key, value)
            self._read_ms.pop(partition, None)
            self.step.opened(partition)
            for topic in self.step.inputs:
                committed = self.cluster.committed.get((self.step.name, topic, partition), 0)
                # As a worker does: from the committed offset, or back to where the step's
                # state says it must resume if that is earlier.
                resume = self.step.resume_offset(topic, partition)
                start = committed if resume is None else min(committed, resume)
                self._positions[(topic, partition)] = start

    def revoke(self, partitions: Iterable[int]) -> None:
        """Hand ``partitions`` over: their last outputs and state written, offsets committed."""
        for partition in list(partitions):
            outputs = self._outputs()
            self.step.closing(partition, outputs)
            self._checkpoint(partition, {})
            del self.state.held[partition]

    # -- work ----------------------------------------------------------------------------

    def poll(self, max_records: int = 100) -> int:
        """One batch (at most ``max_records``) of each input partition with unread records;
        returns how many records were handled."""
        handled = 0
        for partition in sorted(self.state.held):
            for topic in self.step.inputs:
                position = self._positions[(topic, partition)]
                messages = self.cluster.read(topic, partition, position, max_records)
                if not messages:
                    continue
                outputs = self._outputs()
                records = self._inputs.decode_many(topic, partition, messages, outputs)
                self._read_ms[partition] = self.now_ms
                self.step.process(partition, records, outputs)
                self.step.read_through(topic, partition, messages[-1].offset + 1)
                self._checkpoint(partition, {(topic, partition): messages[-1].offset + 1})
                handled += len(messages)
        return handled

    def run(self, max_records: int = 100) -> int:
        """Batches until every assigned input partition is read to its end."""
        total = 0
        while handled := self.poll(max_records):
            total += handled
        return total

    def tick(self, now_ms: int | None = None) -> None:
        """The step's timer for every held partition (at ``now_ms``, if given)."""
        if now_ms is not None:
            self.now_ms = now_ms
        for partition in sorted(self.state.held):
            outputs = self._outputs()
            self.step.tick(partition, self.now_ms, self._read_ms.get(partition), outputs)
            self._checkpoint(partition, {})

    def _checkpoint(self, partition: int, offsets: dict[tuple[str, int], int]) -> None:
        """Deliver, then write state, then commit; crash after a phase if asked to."""
        self.checkpoints += 1
        crash = None
        if self.crash_after is not None and self.crash_after[0] == self.checkpoints:
            crash = self.crash_after[1]
        pending, self._pending = self._pending, []
        if crash == "process":
            raise SimulatedCrashError("after process")
        for message in pending:
            self.cluster.produce(message.topic, message.key, message.value, message.partition)
        if crash == "deliver":
            raise SimulatedCrashError("after deliver")
        for store in self.state.names:
            changes = self.state.held[partition][store].take_changes()
            if changes:
                log = self.cluster.changelogs.setdefault((self.step.name, store, partition), [])
                log += changes
        if crash == "state":
            raise SimulatedCrashError("after state")
        for (topic, where), offset in offsets.items():
            self._positions[(topic, where)] = offset
            self.cluster.committed[(self.step.name, topic, where)] = offset
