"""The contract every step passes (as River's ``check_estimator`` for estimators).

:func:`check_step` runs a step over given input records in the local runner
(:mod:`streamlearn.runtime.local`) and checks:

1. **Deterministic**: the same input twice gives the same outputs, byte for byte, and
   batching does not matter (one record per batch gives what large batches give).
2. **Crash-safe**: a worker that dies after any phase of any checkpoint (handled but not
   delivered; delivered but state not written; state written but offsets not committed)
   and a new worker that restores the state and resumes from the committed offsets
   together lose nothing and add nothing downstream: every output of the run without a
   crash is there, and anything more is an exact copy of one of them (which a consumer
   that keeps one record per identity absorbs).
3. **Movable**: a partition handed from one worker to another mid-stream (state restored
   from the changelog on the new one) gives the same outputs as one worker.

Topics whose records stand for *state* rather than events (``model.state``: a snapshot
per model, its version and timing free) are compared by their newest record per key,
on the fields that must not depend on where a run stopped (:data:`STATE_FIELDS`);
``model.metrics`` is not compared (:data:`UNCHECKED`).
A failed check raises :class:`ContractViolation` saying which and where.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamlearn.runtime.local import LocalCluster, LocalWorker, Phase, SimulatedCrashError
from streamlearn.runtime.step import Step
from streamlearn.serde import SchemaSource
from streamlearn.topology.catalogue import TopicCatalogue

PHASES: tuple[Phase, ...] = ("process", "deliver", "state")
CRASH_POINTS = 12
"""Checkpoints of the reference run, evenly spread, after which a worker is made to crash."""
STATE_FIELDS: dict[str, tuple[str, ...]] = {
    "model.state": ("model_name", "trained_examples", "payload_sha256", "offsets"),
}
"""Topics compared by their newest record per key, on these fields."""
UNCHECKED = frozenset({"model.metrics"})
"""Topics that describe a process's run, not the log (prequential metrics restart with
the process that computes them; residual windows follow the wall clock)."""


class ContractViolation(AssertionError):  # noqa: N818 (a failed check, as pytest shows it)
    """A step broke the runtime's contract."""


@dataclass(frozen=True)
class InputRecord:
    """A record to put on one of the step's input topics (partitioned by its key)."""

    topic: str
    key: bytes
    value: bytes


Outputs = list[tuple[str, int, bytes | None, bytes | None]]


def _outputs(cluster: LocalCluster, step: Step) -> Outputs:
    return [
        (m.topic, m.partition, m.key, m.value)
        for topic in (*step.outputs, "events.rejected")
        for m in cluster.messages(topic)
    ]


class _Harness:
    def __init__(
        self,
        make_step: Callable[[LocalCluster], Step],
        records: Sequence[InputRecord],
        catalogue: TopicCatalogue,
        registry: SchemaSource,
        partitions: int,
        now_ms: int,
    ) -> None:
        self.make_step = make_step
        self.records = records
        self.catalogue = catalogue
        self.registry = registry
        self.partitions = partitions
        self.now_ms = now_ms

    def cluster(self) -> LocalCluster:
        cluster = LocalCluster(self.catalogue, self.registry, self.partitions)
        for record in self.records:
            cluster.produce(record.topic, record.key, record.value)
        return cluster

    def worker(self, cluster: LocalCluster, partitions: Iterable[int] | None = None) -> LocalWorker:
        worker = LocalWorker(cluster, self.make_step(cluster), now_ms=self.now_ms)
        worker.assign(range(self.partitions) if partitions is None else partitions)
        return worker

    def finish(self, worker: LocalWorker, batch: int) -> None:
        """Read to the end, then hand everything back (a graceful stop)."""
        worker.run(batch)
        worker.revoke(list(worker.state.partitions()))

    def reference(self, batch: int) -> tuple[LocalWorker, Outputs]:
        cluster = self.cluster()
        worker = self.worker(cluster)
        self.finish(worker, batch)
        return worker, _outputs(cluster, worker.step)


def _state_view(records: Outputs, registry_decode: Callable[[str, bytes], dict[str, Any]]) -> Any:
    newest: dict[tuple[str, bytes | None], Any] = {}
    for topic, _, key, value in records:
        fields = STATE_FIELDS.get(topic)
        if fields is None or value is None:
            continue
        decoded = registry_decode(topic, value)
        newest[(topic, key)] = tuple(repr(decoded[f]) for f in fields)
    return newest


def _split(records: Outputs) -> Outputs:
    """The outputs compared record by record."""
    return [r for r in records if r[0] not in STATE_FIELDS and r[0] not in UNCHECKED]


def check_step(
    make_step: Callable[[LocalCluster], Step],
    records: Sequence[InputRecord],
    *,
    catalogue: TopicCatalogue,
    registry: SchemaSource,
    partitions: int = 3,
    now_ms: int = 1_800_000_000_000,
    batch: int = 20,
) -> Outputs:
    """Run every check (see the module docstring) of the steps ``make_step(cluster)``
    makes (a fresh one per worker; ``cluster`` is the run's, for a step that reads its
    own outputs, e.g. through :meth:`LocalCluster.environment`); returns the reference
    outputs."""
    harness = _Harness(make_step, records, catalogue, registry, partitions, now_ms)

    def decode(topic: str, value: bytes) -> dict[str, Any]:
        return catalogue.topic(topic).serde(registry).decode(value)

    worker, reference = harness.reference(batch)
    step = worker.step
    if not _split(reference) and not _state_view(reference, decode):
        raise ContractViolation(f"{step.name}: the check's input produced no output at all")
    reference_events = Counter(_split(reference))
    reference_state = _state_view(reference, decode)

    _, again = harness.reference(batch)
    if again != reference:
        raise ContractViolation(f"{step.name}: the same input twice gave different outputs")
    _, one_by_one = harness.reference(1)
    if Counter(_split(one_by_one)) != reference_events or (
        _state_view(one_by_one, decode) != reference_state
    ):
        raise ContractViolation(f"{step.name}: one record per batch gave other outputs")

    total = worker.checkpoints
    for phase in PHASES:
        for crash_at in sorted(
            {1 + i * (total - 1) // (CRASH_POINTS - 1) for i in range(CRASH_POINTS)}
        ):
            cluster = harness.cluster()
            first = harness.worker(cluster)
            first.crash_after = (crash_at, phase)
            try:
                harness.finish(first, batch)
            except SimulatedCrashError:
                pass
            else:
                raise ContractViolation(f"{step.name}: checkpoint {crash_at} never came")
            second = harness.worker(cluster)
            harness.finish(second, batch)
            outputs = _outputs(cluster, second.step)
            where = f"{step.name}: a crash after {phase!r} of checkpoint {crash_at} of {total}"
            counted = Counter(_split(outputs))
            lost = reference_events - counted
            if lost:
                raise ContractViolation(f"{where} lost {sum(lost.values())} outputs")
            new = set(counted) - set(reference_events)
            if new:
                raise ContractViolation(f"{where} made {len(new)} outputs no run without it makes")
            if _state_view(outputs, decode) != reference_state:
                raise ContractViolation(f"{where} ended in another state on {set(STATE_FIELDS)}")

    cluster = harness.cluster()
    moved = harness.worker(cluster)
    moved.poll(batch)
    handed = list(moved.state.partitions())[: max(1, partitions // 2)]
    moved.revoke(handed)
    other = harness.worker(cluster, handed)
    moved.run(batch)
    harness.finish(other, batch)
    moved.revoke(list(moved.state.partitions()))
    outputs = _outputs(cluster, step)
    if Counter(_split(outputs)) != reference_events or _state_view(outputs, decode) != (
        reference_state
    ):
        raise ContractViolation(
            f"{step.name}: partitions handed to another worker mid-stream gave other outputs"
        )
    return reference
