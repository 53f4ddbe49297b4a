"""The learner agent: ``training.examples`` → ``model.state`` (and ``model.metrics``).

One :class:`~streamlearn.models.online.OnlineLearner` per configured model.
``training.examples`` is keyed by model name, so each model's examples are in one
partition, read in order by the worker that owns it, which alone publishes the model's
snapshots: several learner workers split the models between them.

Exactly-once learning on an at-least-once stream: ``model.state``, not the consumer
group's committed offsets, says what a model has learned. When a partition is opened the
learners of its models resume from their newest verified snapshots and the runtime
resumes reading at the offsets recorded there (before the committed offset when examples
were learned after the last snapshot and lost with the process); any example below them
is skipped. A restarted learner therefore ends with the same model, byte for byte, as one
that never stopped. A partition closed gracefully (rebalance, stop) publishes a last
snapshot of its models first, so the next owner re-reads nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar

from streamlearn.agents.learner_figures import TOO_LARGE_KIND, LearnerFigures, too_large_alert
from streamlearn.agents.model_state import ModelStateView, consider
from streamlearn.kafka_clients import (
    AGENT_MAX_REQUEST_BYTES,
    DEFAULT_MESSAGE_BYTES,
    key_partition,
)
from streamlearn.log_repeats import RepeatedLines
from streamlearn.models import SnapshotRejected
from streamlearn.models.configured import configured_specs
from streamlearn.models.exceptions import SnapshotTooLarge
from streamlearn.models.keyring import Keyring
from streamlearn.models.online import OnlineLearner
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import NEWEST, is_promoted, state_key, state_keys
from streamlearn.models.specs import ModelSpec
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import FETCH_HOLD_MS, Emit, Record, Step
from streamlearn.signing_key_check import LEARNER_NEED, require_signing_key

AGENT = "learner"
log = logging.getLogger(__name__)
SNAPSHOT_RECORD_HEADROOM = 64 * 1024
"""What a snapshot record holds besides its payload (spec text, signature, offsets,
metrics, Avro framing) is far under this."""
FAILURE_LOG_EVERY_S = 60.0
"""How often one model's failures on examples are logged (each is in events.rejected)."""

SnapshotSource = Callable[[Iterable[str]], ModelStateView]
"""``read(names)``: what ``model.state`` holds for these models (read to its end)."""


class LearnerStep(Step):
    """The agent (see the module docstring)."""

    name = AGENT
    inputs = ("training.examples",)
    outputs = ("model.state", "model.metrics", "monitoring.alerts")
    tick_every_s = 0.5
    plain_inputs = True  # the learner reads no timestamp: decoding them as datetimes was waste
    fetch_hold_ms = FETCH_HOLD_MS
    # Scoring and learning an example is ~32 µs of Python; decoding it (~5 µs) moves to a
    # second core. process() takes any run of records: learning is per example.
    decodes_in_second_process = True
    # What prepared_example reads of a TrainingExample (served_ts for the learning lab's
    # prequential hook, OnlineLearner.on_scored): three of its four timestamps (multi-byte
    # varints), the user id and label definition are read past.
    input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "training.examples": (
            "request_id", "model_name", "model_version", "arm", "features", "label", "score",
            "served_ts", "weight",
        )
    }  # fmt: skip
    # Each example reaches process() as what learning reads of it, prepared where it was
    # decoded: in the decoding process, that is ~2.5 µs an example off this one's core.
    input_preparations: ClassVar[Mapping[str, str]] = {
        "training.examples": "streamlearn.models.prepared:prepared_example"
    }

    def __init__(
        self,
        specs: Mapping[str, ModelSpec],
        metrics: AgentMetrics,
        *,
        signing_key: SigningKey,
        signing_key_id: str | None,
        examples_topic: str,
        snapshots: SnapshotSource,
        verification: Keyring | None = None,
        max_snapshot_bytes: int | None = None,
    ) -> None:
        self.learners = {
            name: OnlineLearner(
                spec,
                signing_key=signing_key,
                signing_key_id=signing_key_id,
                verification=verification,
            )
            for name, spec in specs.items()
        }
        for learner in self.learners.values():
            learner.max_payload_bytes = max_snapshot_bytes
        self._failure_lines = RepeatedLines(FAILURE_LOG_EVERY_S)
        """A model's failures on examples, logged once per interval (numbers aside)."""
        self._too_large: set[str] = set()
        """Models whose last snapshot did not fit model.state (logged and alerted once)."""
        self._held_back_out: set[str] = set()
        """Models whose newest version on model.state is one their gate held back (under
        ``<model>~newest``): the next promoted version deletes that key (a tombstone)."""
        self.metrics = metrics
        self.examples_topic = examples_topic
        """The Kafka name of ``training.examples``: snapshots record offsets under it."""
        self.snapshots = snapshots
        self._window_start: dict[str, datetime] = {}
        self._models: dict[int, list[str]] = {}
        self._rereading: set[int] = set()
        """Partitions opened whose first batch (from the window before the learners'
        offsets) is still to come."""
        self.figures = LearnerFigures(metrics.registry)
        for name, learner in self.learners.items():
            metrics.expose(
                f"streamlearn_learner_{name}_records",
                f"training.examples records read by the learner of {name}, by what became of them.",
                lambda learner=learner: learner.counters,  # type: ignore[misc]
            )

    def _models_of(self, partition: int) -> list[str]:
        """The models whose examples are in ``partition`` (keyed by model name)."""
        names = self._models.get(partition)
        if names is None:
            count = self.state.count
            names = self._models[partition] = [
                name for name in self.learners if key_partition(name.encode(), count) == partition
            ]
        return names

    def opened(self, partition: int) -> None:
        self._rereading.add(partition)
        names = self._models_of(partition)
        baselines = [s for n in names if (s := self.learners[n].spec.warm_start) is not None]
        view = self.snapshots([*names, *baselines])
        for name in names:
            learner = self.learners[name]
            snapshot = view.newest.get(name)
            if snapshot is not None and not is_promoted(snapshot):
                self._held_back_out.add(name)
            if snapshot is not None and int(snapshot["version"]) != learner.version:
                try:
                    learner.resume(snapshot, view.promoted.get(name))
                    gate = f", with {learner.gate_resumed}" if learner.gate_resumed else ""
                    log.info("learner %s resumed from version %d%s", name, learner.version, gate)
                except SnapshotRejected as exc:  # verified, so another spec's: an upgrade
                    self.metrics.rejected_snapshots.labels(model=name, reason=exc.reason).inc()
                    log.error("cannot resume %s: %s; starting anew", name, exc)
                    snapshot = None
            if snapshot is None and learner.trained_examples == 0:
                self._warm_start(name, view)
            # Numbered after anything on the topic, verified or not, so workers move on.
            learner.version = max(learner.version, view.highest_version.get(name, 0))
            self._window_start[name] = self._now()
        for name, version, reason in view.rejected:
            self.metrics.rejected_snapshots.labels(model=name, reason=reason).inc()
            log.error("model.state holds a rejected snapshot %s v%d (%s)", name, version, reason)

    def _warm_start(self, name: str, view: ModelStateView) -> None:
        """A model with no snapshot of its own starts from its spec's baseline, if any."""
        learner = self.learners[name]
        baseline_name = learner.spec.warm_start
        if baseline_name is None:
            return
        baseline = view.newest.get(baseline_name)
        if baseline is None:
            self.figures.cold_starts.labels(model=name, reason="no_baseline").inc()
            log.warning("no verified snapshot of %s to warm-start %s: cold", baseline_name, name)
            return
        try:
            learner.warm_start(baseline)
        except SnapshotRejected as exc:  # verified by the view, so: another spec's
            self.metrics.rejected_snapshots.labels(model=baseline_name, reason=exc.reason).inc()
            self.figures.cold_starts.labels(model=name, reason="baseline_rejected").inc()
            log.error("cannot warm-start %s from %s: %s; cold", name, baseline_name, exc)
            return
        log.info("learner %s warm-starts from %s", name, learner.warm_from)

    def resume_offset(self, topic: str, partition: int) -> int | None:
        # A model without a snapshot has learned nothing that survives: from the start
        # (whatever the group committed, which may be past examples it learned and lost).
        # Until the first batch after opening is handled, from the window before it: read
        # again (skipped, not learned), it tells the learner which examples a re-emitted
        # copy would repeat (models/recent_examples.py). Asked before every batch, so a
        # fetch in flight from the committed offset is refused until the window's comes.
        window = partition in self._rereading
        expected = [
            self.learners[name].next_offsets.get((self.examples_topic, partition), 0)
            - (self.learners[name].recent_examples.window if window else 0)
            for name in self._models_of(partition)
        ]
        return None if not expected else max(0, min(expected))

    def read_through(self, topic: str, partition: int, next_offset: int) -> None:
        # Records the runtime rejected (they do not decode) never reach process: counted
        # as read, as an invalid example is. Otherwise resume_offset stayed at the first of
        # them and the worker sought back to it before every later batch: each rejected
        # twice, and a run of them longer than a fetch read again forever (a probe: 8,000
        # records of garbage, 323,000 rejections in 30 s, and ctr learned nothing more).
        self._rereading.discard(partition)
        position = (self.examples_topic, partition)
        for name in self._models_of(partition):
            offsets = self.learners[name].next_offsets
            offsets[position] = max(offsets.get(position, 0), next_offset)

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        self._rereading.discard(partition)
        learners = [self.learners[name] for name in self._models_of(partition)]
        topic = self.examples_topic
        for record in records:
            prepared = record.value  # prepared_example's (input_preparations)
            for learner in learners:
                if not learner.learn_prepared(prepared, topic, partition, record.offset):
                    problem = learner.last_invalid
                    if problem is not None:  # the bytes as read, with the reason
                        emit.reject(record, "invalid_example", f"{learner.model_name}: {problem}")
                    elif learner.last_failure is not None:
                        self._model_failed(learner, record, emit)
        self._publish_due(partition, emit)

    def _model_failed(self, learner: OnlineLearner, record: Record, emit: Emit) -> None:
        """An example the model raised on (or scored non-finite): to ``events.rejected``,
        and logged once per interval per model (a pipeline that fails on a feature every
        tenth example would otherwise log a line per example)."""
        failure = learner.last_failure
        emit.reject(record, "model_error", f"{learner.model_name}: {failure}")
        if not log.isEnabledFor(logging.ERROR):
            return
        error = learner.failed_with
        line = log.makeRecord(
            log.name, logging.ERROR, __file__, 0,
            "model %s did not learn the example at offset %d: %s (each is in events.rejected, "
            "counted as model_error)", (learner.model_name, record.offset, failure),
            None if error is None else (type(error), error, error.__traceback__),
        )  # fmt: skip
        if self._failure_lines.filter(line):
            log.handle(line)

    def tick(self, partition: int, now_ms: int, read_ms: int | None, emit: Emit) -> None:
        self._publish_due(partition, emit)

    def closing(self, partition: int, emit: Emit) -> None:
        for name in self._models_of(partition):
            if self.learners[name].unpublished:
                self._publish(name, emit)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_clock() / 1000, UTC)

    def _publish_due(self, partition: int, emit: Emit) -> None:
        now_s = self.wall_clock() / 1000
        for name in self._models_of(partition):
            learner = self.learners[name]
            again = learner.take_signed_again()
            if again is not None:  # after a key rotation (OnlineLearner.resume)
                emit.to("model.state")(state_key(again), again)
                log.info("learner %s: v%d signed again with the current key", name,
                         again["version"])  # fmt: skip
            if learner.snapshot_due(now_s):
                self._publish(name, emit)

    def _publish(self, name: str, emit: Emit) -> None:
        learner = self.learners[name]
        created = self._now()
        try:
            snapshot = learner.snapshot(created, created.timestamp())
        except SnapshotTooLarge as exc:
            # Published, it would fail at the broker and stop the agent, again at every
            # restart: the model keeps learning, unpublished, and an operator is told.
            self.figures.unpublished.labels(model=name, reason="too_large").inc()
            if name not in self._too_large:
                self._too_large.add(name)
                log.error("%s; not published (workers keep the version they have)", exc)
                emit.to("monitoring.alerts")(
                    f"{TOO_LARGE_KIND}/{name}", too_large_alert(exc, learner.version, created)
                )
            return
        self._too_large.discard(name)
        if snapshot is None:
            return  # a candidate was cut, to be judged before it is published
        record = learner.metrics_record(self._window_start.get(name, created), created, created)
        self._window_start[name] = created
        key = state_key(snapshot)
        emit.to("model.state")(key, snapshot)
        if key != name:
            self._held_back_out.add(name)
        elif name in self._held_back_out:
            # A promoted version is the newest: the held-back one under <model>~newest
            # would otherwise stay on the compacted topic for good, and once it no longer
            # verified (a retired key, another spec), be refused at every start.
            emit.to("model.state")(name + NEWEST, None)
            self._held_back_out.discard(name)
        emit.to("model.metrics")(name, record)
        self.metrics.snapshots.labels(model=name).inc()
        alert = self.figures.published(snapshot, record["metrics"])
        if alert is not None:
            log.warning("%s", alert["message"])
            emit.to("monitoring.alerts")(alert["alert_key"], alert)


def make_learner(env: StepEnvironment, specs: Mapping[str, ModelSpec] | None = None) -> LearnerStep:
    """The learner of the configured models (or of ``specs``: the learning lab tries
    variants of them), signing with the configured key."""
    settings = env.settings
    key = require_signing_key(settings, LEARNER_NEED)
    # Resuming verifies with the keyring: after a rotation, the newest snapshot may still
    # be signed by the previous key.
    keyring = Keyring.from_settings(settings)
    snapshots_serde = env.catalogue.topic("model.state").serde(env.registry)

    def snapshots(names: Iterable[str]) -> ModelStateView:
        wanted = state_keys(names)
        view = ModelStateView()
        if wanted:
            for record_key, value in env.read_topic("model.state"):
                consider(view, snapshots_serde, record_key, value, wanted, keyring)
        return view

    # What both the topic and the agents' producer take (a larger topic limit alone would
    # still fail at the producer).
    topic_limit = env.catalogue.topic("model.state").spec.max_message_bytes
    limit = min(topic_limit or DEFAULT_MESSAGE_BYTES, AGENT_MAX_REQUEST_BYTES)
    return LearnerStep(
        configured_specs(settings) if specs is None else specs,
        env.metrics,
        signing_key=key,
        signing_key_id=settings.model_signing_key_id,
        examples_topic=env.catalogue.topic("training.examples").name,
        snapshots=snapshots,
        verification=keyring,
        max_snapshot_bytes=max(limit - SNAPSHOT_RECORD_HEADROOM, limit // 2),
    )
