"""A step inside a Faust worker: its stores as tables, its inputs as batch handlers, its
outputs through the checkpoint, its timer, its partitions opened and closed.

For each batch of an input partition: the records are decoded (poison → events.rejected),
the step handles them, its outputs and state changes are encoded, and the checkpoint
(deliver, then state, then ack) is submitted; the batch consumer acknowledges the batch
when it completes. Between handling and checkpoint nothing awaits, so a step is never
called twice at once and needs no lock.

Partitions: after each rebalance, once table recovery is done, the step's partitions that
this worker owns are :meth:`~streamlearn.runtime.step.Step.opened`; when partitions are
revoked (before their offsets are committed) and when the worker stops, the open ones are
:meth:`~streamlearn.runtime.step.Step.closing` and their last checkpoints awaited.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from faust.types import TP

from streamlearn.runtime.checkpoint import Checkpoints
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.faust_app import WorkerRuntime
from streamlearn.runtime.faust_internals import BatchConsumer, Deliveries
from streamlearn.runtime.faust_store import PartitionedStore
from streamlearn.runtime.outputs import OutputBatches
from streamlearn.runtime.records import StepOutputs, step_topics
from streamlearn.runtime.registry_wait import look_up_writers
from streamlearn.runtime.state import PartitionState
from streamlearn.runtime.step import Step

log = logging.getLogger(__name__)
CHANGELOG_SEGMENTS = {"segment.ms": "600000", "segment.bytes": str(64 * 1024 * 1024)}
"""Segment settings of the stores' changelog topics (compacted). Compaction
never touches a topic's active segment, and with the broker's defaults (1 GiB, 7 days) a
busy changelog kept every write for hours: after 40 minutes the monitor's held 2.3 million
records (914 MB), and a restarted monitor took 167 s to read them back on a quiet machine
(found by a probe). A segment rolls every 10 minutes or 64 MiB instead, so a restart reads
the compacted state and at most that much more. An agent sets them on its changelogs
when it starts (``worker._declare_changelogs``: on existing ones too, which its ACLs allow),
and Faust creates with them any it would create itself."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def usable_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float:
    """The cores this process may use: those it may run on, fewer under a cgroup's CPU
    quota (a Kubernetes CPU limit), where a second process would only share the same."""
    cores = float(len(os.sched_getaffinity(0)))
    try:
        quota, period = cpu_max.read_text().split()
        return cores if quota == "max" else min(cores, int(quota) / int(period))
    except (OSError, ValueError):  # no cgroup v2 here
        return cores


class _TableStores:
    """A step's :class:`~streamlearn.runtime.step.Stores` on Faust tables."""

    def __init__(self, tables: dict[str, Any], count: int) -> None:
        self.tables = tables
        self.count = count
        self.open: set[int] = set()

    def store(self, name: str) -> PartitionedStore:
        data: PartitionedStore = self.tables[name].data
        return data

    def of(self, store: str, partition: int) -> PartitionState:
        return self.store(store).partition(partition)

    def partitions(self) -> frozenset[int]:
        return frozenset(self.open)


class StepBinding:
    """One step bound to a worker's app (see the module docstring)."""

    def __init__(self, runtime: WorkerRuntime, step: Step) -> None:
        self.runtime = runtime
        self.app = app = runtime.app
        self.step = step
        catalogue = runtime.catalogue
        names = [catalogue.topic(topic).name for topic in step.inputs]
        counts = {name: runtime.partitions_of(name) for name in names}
        if len(set(counts.values())) != 1:
            raise RuntimeConfigurationError(
                f"the inputs of {step.name} must have as many partitions each: {counts}"
            )
        self.partitions = counts[names[0]]
        self.first_input = names[0]
        self.stores = _TableStores(
            {
                store: app.Table(
                    f"{step.name}-{store}",
                    partitions=self.partitions,
                    # Raw bytes for Faust: the store reads the changelog's records (UTF-8
                    # keys, JSON values) itself.
                    key_type=bytes,
                    value_type=bytes,
                    extra_topic_configs={"cleanup.policy": "compact", **CHANGELOG_SEGMENTS},
                )
                for store in step.stores
            },
            self.partitions,
        )
        self.inputs, self.writers, self.names = step_topics(
            catalogue, runtime.registry, step.inputs, step.outputs, runtime.partitions_of,
            logical_types=not step.plain_inputs, fields=step.input_fields,
            preparations=step.input_preparations, rejections=step.publishes_rejections,
        )  # fmt: skip
        self.logical = {name: topic for topic, name in self.names.items()}
        if (
            step.decodes_in_second_process
            and runtime.settings.agent_decoding_process
            and usable_cores() > 1
        ):
            process = self.inputs.start_decoding_process()
            if process is not None:
                log.info("%s decodes in a second process (pid %d)", step.name, process.pid)
        self.checkpoints = Checkpoints()
        self._opening = asyncio.Lock()
        self._generation: int | None = None
        self._read_ms: dict[int, int] = {}
        self._quiet_checked: dict[TP, int] = {}
        """The position :meth:`_seek_back_quiet` last checked, per input partition."""
        step.bind(self.stores, wall_ms)

    # -- outputs -------------------------------------------------------------------------

    def _outputs(self) -> tuple[StepOutputs, OutputBatches]:
        batches = self.app.batch_producer.batches()
        emit = StepOutputs(self.writers, batches.add, self.step.name, self.runtime.metrics,
                           wall_ms, self.names,
                           publish_rejections=self.step.publishes_rejections)  # fmt: skip
        return emit, batches

    def _checkpoint(self, partition: int, outputs: OutputBatches, *, acks: bool) -> list[Any]:
        """Submit ``outputs`` and the partition's state changes (encoded now); returns the
        checkpoint's task to wait for before the batch's offsets are acknowledged."""
        state = self.app.batch_producer.batches()
        for name, table in self.stores.tables.items():
            changelog = table.changelog_topic.get_topic_name()
            for key, value in self.stores.of(name, partition).take_changes():
                state.add(changelog, partition, key, value)
        if not acks and not outputs.records and not state.records:
            return []  # a tick or closing with nothing to write
        # A batch with nothing to write still waits for the partition's earlier batches:
        # acknowledged before them, its offsets could be committed past theirs (Faust
        # commits the first run of consecutive acknowledged offsets).
        return [self.checkpoints.submit(partition, outputs, state)]

    # -- partitions ----------------------------------------------------------------------

    def _owned(self) -> frozenset[int] | None:
        """The step's partitions this worker owns with their state restored; None while
        a rebalance or recovery is under way."""
        app = self.app
        if app.in_recovery or app.rebalancing:
            return None
        if self.step.stores:
            return self.stores.store(self.step.stores[0]).active
        assignment = app.consumer.assignment()
        return frozenset(tp.partition for tp in assignment if tp.topic == self.first_input)

    async def _sync(self) -> bool:
        """Open the partitions gained since the last rebalance; False while one runs.

        ``Step.opened`` runs in a thread (the learner reads ``model.state`` there); batches
        and ticks of this step wait for it, so the step is still never called twice at
        once."""
        if self._generation == self.app.consumer_generation_id:
            return True
        async with self._opening:
            generation = self.app.consumer_generation_id
            if self._generation == generation:
                return True
            owned = self._owned()
            if owned is None:
                return False
            for partition in sorted(self.stores.open - owned):
                # Lost without a revocation passing through here (it raced an opening):
                # its state is gone, so nothing it would emit now can be trusted.
                log.warning("%s: partition %d left without closing", self.step.name, partition)
                self.step.closing(partition, self._outputs()[0])
                self.stores.open.discard(partition)
            for partition in sorted(owned - self.stores.open):
                self._read_ms.pop(partition, None)
                await asyncio.to_thread(self.step.opened, partition)
                self.stores.open.add(partition)
            self._generation = generation
            self._quiet_checked.clear()  # partitions reopened: their state says anew
            return True

    async def close(self, partitions: set[int]) -> None:
        """The step's last outputs and state of ``partitions`` (revoked, or all at stop)."""
        closing = sorted(partitions & self.stores.open)
        for partition in closing:
            emit, outputs = self._outputs()
            self.step.closing(partition, emit)
            self._checkpoint(partition, outputs, acks=False)
            self.stores.open.discard(partition)
        self._generation = None
        await self.checkpoints.drain(set(closing))

    async def on_revoked(self, revoked: set[TP]) -> None:
        await self.close({tp.partition for tp in revoked if tp.topic in self.logical})

    # -- batches and ticks ---------------------------------------------------------------

    async def handle(self, tp: TP, messages: list[Any]) -> Deliveries | None:
        topic = self.logical[tp.topic]
        # Before anything of the batch reaches the step: with the registry away, a writer
        # schema not seen yet is waited for (the worker stopping: read again after).
        if not await look_up_writers(self.inputs, topic, messages, self.app):
            return None
        if not await self._sync() or tp.partition not in self.stores.open:
            # Not ours yet (recovery or rebalance under way): read again later.
            log.warning("%s: a batch of a partition %s has not opened: reading it again",
                        tp, self.step.name)  # fmt: skip
            await self.app.consumer.seek(tp, messages[0].offset)
            return None
        if await self._sought_back(tp, topic, messages[0].offset):
            return None
        emit, outputs = self._outputs()
        partition = tp.partition
        self._read_ms[partition] = wall_ms()
        for records in self.inputs.decoded_chunks(topic, partition, messages, emit):
            if records:
                self.step.process(partition, records, emit)
        self.step.read_through(topic, partition, messages[-1].offset + 1)
        return self._checkpoint(partition, outputs, acks=True)

    async def _sought_back(
        self, tp: TP, topic: str, first: int, what: str = "batch starts at"
    ) -> bool:
        """Whether the step's state needs records before ``first`` (e.g. examples learned
        after the learner's last snapshot, lost with the process, their offsets already
        committed): then the consumer seeks back to them and the batch is not handled.
        Checked on every batch, so a fetch already in flight when it seeked is refused too,
        and at every tick for a partition no batch comes to (:meth:`_seek_back_quiet`);
        records retention removed are not waited for."""
        resume = self.step.resume_offset(topic, tp.partition)
        if resume is None or first <= resume:
            return False
        earliest = (await self.app.consumer.earliest_offsets(tp)).get(tp, 0)
        start = max(resume, earliest)
        if first <= start:
            return False
        log.warning("%s: %s %d, %s needs %d: seeking back",
                    tp, what, first, self.step.name, start)  # fmt: skip
        self.runtime.metrics.resume_seeks.labels(agent=self.step.name).inc()
        await self.app.consumer.seek(tp, start)
        return True

    async def _seek_back_quiet(self, lags: Mapping[TP, tuple[int, int]]) -> bool:
        """:meth:`_sought_back` for each open partition from the consumer's position: a
        partition with nothing new to read gets no batch to ask it. A learner restarted
        after examples it learned and lost (their offsets committed) sat on the older
        model until the next example came, however long the topic stayed quiet. A
        position already checked is not asked again (a seek moves it). True when it
        sought back."""
        sought = False
        for tp, (position, _lag) in lags.items():
            topic = self.logical.get(tp.topic)
            if topic is None or topic not in self.step.inputs:
                continue
            if tp.partition not in self.stores.open:
                continue
            partition = TP(tp.topic, tp.partition)
            if self._quiet_checked.get(partition) == position:
                continue
            self._quiet_checked[partition] = position
            sought = await self._sought_back(partition, topic, position, "reading from") or sought
        return sought

    async def tick(self) -> None:
        if not await self._sync():
            return
        consumer = self.app.consumer
        batches = consumer if isinstance(consumer, BatchConsumer) else None
        lags = {} if batches is None else batches.partition_lags()
        if batches is not None and await self._seek_back_quiet(lags):
            lags = batches.partition_lags()  # positions moved: none is at the head now
        now = wall_ms()
        for partition in sorted(self.stores.open):
            emit, outputs = self._outputs()
            self.step.tick(partition, now, self._read_at(partition, now, lags), emit)
            self._checkpoint(partition, outputs, acks=False)

    def _read_at(self, partition: int, now: int, lags: Mapping[TP, tuple[int, int]]) -> int | None:
        """When ``partition`` was last read, for the step's timer (None: not known yet).

        A partition taken over (a restart, a rebalance) and found with nothing to read is
        at the head of its log: read now, as far as liveness goes. Without this, the timer
        of a partition gone quiet before the worker took it never moved (no batch came to
        set a read time), and its sessions and label horizons stayed open until its next
        record. Whether it is live is still the event clock's verdict (its newest record
        within the live lag of now), so a backfill's partition is not made live."""
        read_ms = self._read_ms.get(partition)
        if read_ms is None and self._at_the_head(partition, lags):
            read_ms = self._read_ms[partition] = now
        return read_ms

    def _at_the_head(self, partition: int, lags: Mapping[TP, tuple[int, int]]) -> bool:
        """Whether every input of the step is read to the end offset the last fetch saw
        in ``partition`` (position and end known, nothing after the position)."""
        for topic in self.step.inputs:
            known = lags.get(TP(self.names[topic], partition))
            if known is None or known[1] > 0:
                return False
        return True


def bind_step(runtime: WorkerRuntime, step: Step) -> StepBinding:
    """Run ``step`` in ``runtime``'s app."""
    binding = StepBinding(runtime, step)
    app = runtime.app
    for name in binding.logical:
        if binding.logical[name] in step.inputs:
            topic = app.topic(name, key_serializer="raw", value_serializer="raw")
            app.batch_agent(topic)(binding.handle)
    if step.tick_every_s is not None:
        app.timer(step.tick_every_s)(binding.tick)
    app.on_batches_revoked(binding.on_revoked)

    @app.on_before_shutdown.connect
    async def close_all(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await binding.close(set(binding.stores.open))
        binding.inputs.close()

    return binding
