"""``replay model``: train a model on a range of ``training.examples`` and publish it.

The plan (resolved ranges, target name and version) comes first and needs no training;
then the examples are read and learned with the learner's own code, and the snapshot is
built with a manifest of what went in. Published as the next version of the model (what
a learner resumes from, so it goes on online from the replay's end offsets: the initial
training of a new or changed spec), or under a shadow name ``<spec>@<shadow>`` that
prediction workers load and an experiment arm can route to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamlearn.kafka_clients import confirming_producer, key_partition, produce_one_confirmed
from streamlearn.models.configured import configured_spec
from streamlearn.models.keyring import Keyring
from streamlearn.models.online import LearnerCounters
from streamlearn.models.spec_text import setting_hint, spec_differences
from streamlearn.models.specs import SPECS
from streamlearn.replay.examples import ReadCounts
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.groups import consumers_of
from streamlearn.replay.history import ModelHistory, model_history
from streamlearn.replay.positions import PartitionNotRead, PartitionRange, Position, resolve
from streamlearn.replay.read_ahead import read_ahead
from streamlearn.replay.rebuild import ModelTarget, learn, replayed_snapshot
from streamlearn.replay.sources import KafkaSource, RecordSource
from streamlearn.runtime.topic_reader import MAX_RECORD_BYTES, end_offsets
from streamlearn.serde import SchemaSource
from streamlearn.serving.experiments import NAME, NAME_RULE
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue


@dataclass(frozen=True)
class ModelReplayPlan:
    target: ModelTarget
    topic: str
    """Kafka name of ``training.examples``."""
    ranges: tuple[PartitionRange, ...]
    version: int
    """The version the result gets (after every version of its name on ``model.state``)."""
    publish: bool
    source: RecordSource

    @property
    def records(self) -> int:
        return sum(r.count for r in self.ranges)

    def lines(self) -> list[str]:
        target = self.target
        what = (
            f"{target.published_as} v{self.version}" if self.publish else "nothing (no --publish)"
        )
        arm = f" (arm {target.arm})" if target.arm else ""
        return [
            f"train spec {target.spec.name} on the examples of {target.examples_of}{arm}",
            *(
                f"  {self.topic}[{r.partition}] offsets {r.start}..{r.end} ({r.count:,} records;"
                f" {self.source.holder} {r.log_start}..{r.log_end})"
                for r in self.ranges
            ),
            f"source: {self.source.name}; publish: {what}",
        ]


def _target(settings: Settings, name: str, spec: str | None, shadow: str | None) -> ModelTarget:
    base, _, arm = name.partition("@")
    spec_name = spec or base
    if spec_name not in SPECS:
        raise ReplayError(f"no spec {spec_name!r}; known: {sorted(SPECS)}")
    if shadow is not None and not NAME.fullmatch(shadow):
        # <spec>@<shadow> must be a model an experiment arm can route to.
        raise ReplayError(f"shadow name {shadow!r}: {NAME_RULE}")
    published = f"{spec_name}@{shadow}" if shadow else (f"{spec_name}@{arm}" if arm else spec_name)
    return ModelTarget(configured_spec(spec_name, settings), base, arm or None, published)


def plan_model_replay(
    settings: Settings,
    registry: SchemaSource,
    name: str,
    *,
    start: Position = "earliest",
    end: Position = "latest",
    spec: str | None = None,
    shadow: str | None = None,
    publish: bool = False,
    force: bool = False,
    source: RecordSource | None = None,
) -> ModelReplayPlan:
    """What ``replay model`` will do, reading ``source`` (default: Kafka); raises
    :class:`ReplayError` for what it would refuse (a range the source does not hold whole,
    a live learner of the model when publishing its next version)."""
    source = source or KafkaSource(settings)
    key = settings.model_signing_key
    if key is None:
        raise ReplayError("replayed models are signed: set STREAMLEARN_MODEL_SIGNING_KEY")
    target = _target(settings, name, spec, shadow)
    catalogue = TopicCatalogue.from_settings(settings)
    topic = catalogue.topic("training.examples").name
    partitions = len(end_offsets(settings, topic))
    # training.examples is keyed by model name: one partition holds all of a model's.
    partition = key_partition(target.examples_of.encode(), partitions)
    try:
        ranges = resolve(source, topic, start, end, partitions=[partition])
    except PartitionNotRead as exc:
        raise ReplayError(
            f"{target.examples_of}'s examples are all in one partition: {exc}"
        ) from exc
    source.check(topic, ranges)
    state = catalogue.topic("model.state")
    history = model_history(
        settings, state.serde(registry), state.name, target.published_as,
        Keyring.from_settings(settings),
    )  # fmt: skip
    publishing = publish or shadow is not None
    if publishing and not force:
        served = history if target.published_as == target.spec.name else model_history(
            settings, state.serde(registry), state.name, target.spec.name,
            Keyring.from_settings(settings),
        )  # fmt: skip
        _check_servable(target, served)
    if publishing and not any(r.count for r in ranges):
        where = ", ".join(f"{topic}[{r.partition}] offsets {r.start}..{r.end}" for r in ranges)
        raise ReplayError(
            f"nothing to learn: {where} holds no records; an untrained model is not published"
        )
    if publishing and shadow is None and not force:
        readers = consumers_of(settings, topic)
        if readers:
            groups = ", ".join(f"{g.group} ({len(g.members)} members)" for g in readers)
            raise ReplayError(
                f"{topic} is being consumed by {groups}: if one of them is a learner of "
                f"{target.published_as}, it would publish versions of its own beside the "
                "replayed one (groups that only read it, an archive or a monitor, do not). "
                "Stop the learner (it resumes from the replayed snapshot), publish under "
                "--shadow, or, when none of them learns, pass --force (which also skips "
                "the check that workers accept its spec)"
            )
    return ModelReplayPlan(target, topic, ranges, history.highest_version + 1, publishing, source)


def _check_servable(target: ModelTarget, served: ModelHistory) -> None:
    """Refuse to publish a model whose spec text differs from the served model's newest
    verified snapshot: workers configured as the model's learner would refuse it
    (``unknown_spec``) for as long as ``model.state`` keeps it. The text differs by a
    setting, mostly the label horizon, which this command then names."""
    newest = next((s for s in reversed(served.snapshots) if s.rejected is None), None)
    if newest is None and served.snapshots:
        # Nothing served verifies with this command's key: what it signs, workers holding
        # the deployment's key would refuse too (and its spec cannot be compared).
        last = served.snapshots[-1]
        raise ReplayError(
            f"every snapshot of {served.name} on model.state fails verification with this "
            f"command's signing key (v{last.version}: {last.rejected}): workers would refuse "
            f"what it signs. Run with the learner's STREAMLEARN_MODEL_SIGNING_KEY (and "
            "_ID), or pass --force"
        )
    if newest is None:
        return
    theirs, ours = str(newest.snapshot.get("spec")), target.spec.describe()
    if theirs == ours:
        return
    hint = f"run with the learner's settings{setting_hint(theirs)}"
    raise ReplayError(
        f"{served.name} v{newest.version} was trained with another spec than this command's "
        f"settings give ({'; '.join(spec_differences(theirs, ours))}): workers configured as "
        f"its learner would refuse {target.published_as} (unknown_spec) for as long as "
        f"model.state keeps it. {hint[0].upper()}{hint[1:]}, or pass --force"
    )


@dataclass(frozen=True)
class ModelReplay:
    plan: ModelReplayPlan
    snapshot: dict[str, Any]
    counts: ReadCounts
    learned: int
    published_at: tuple[int, int] | None
    """(partition, offset) on ``model.state`` when published."""
    learner_counts: LearnerCounters = field(default_factory=LearnerCounters)
    """What the learner did with each example read (:func:`records_read`)."""
    first_failure: str | None = None
    """Where the model first failed on an example, and how (:attr:`OnlineLearner.first_failure`):
    a replay has no ``events.rejected`` to name each."""


def records_read(counts: ReadCounts, learner: LearnerCounters) -> str:
    """What became of the records read, every one accounted for: ``1,101 records read: 1,030
    learned, 50 copies of an example read before, 20 invalid, 1 undecodable`` (a summary
    of learned and read alone left the user to guess where 70 went)."""
    parts = [
        (learner.learned, "learned"),
        (learner.copies, "copies of an example read before"),
        (learner.invalid, "invalid (a label or weight out of range)"),
        (learner.model_error, "the model failed on (raised, or scored non-finite)"),
        (learner.other_model, "of another model or arm"),
        (learner.replayed, "already learned (below a resumed model's offsets)"),
        (counts.undecodable, "undecodable"),
    ]
    said = ", ".join(f"{n:,} {what}" for n, what in parts if n or what == "learned")
    return f"{counts.read:,} records read: {said}"


def nothing_learned(plan: ModelReplayPlan, counts: ReadCounts, learned: int) -> str | None:
    """Why a replay that learned no example learned none (None: it learned some)."""
    if learned:
        return None
    if not counts.read:  # was "none of the 0 records read is ctr's"
        return "learned no examples: the range holds no records"
    target = plan.target
    whose = f"{target.examples_of}@{target.arm}" if target.arm else target.examples_of
    return f"learned no examples: none of the {counts.read:,} records read is {whose}'s"


def run_model_replay(
    settings: Settings,
    registry: SchemaSource,
    plan: ModelReplayPlan,
    advance: Callable[[int], None] | None = None,
) -> ModelReplay:
    """Learn the plan's examples; publish the snapshot if the plan says so."""
    key = settings.model_signing_key
    assert key is not None  # checked by the plan
    catalogue = TopicCatalogue.from_settings(settings)
    # The learner reads no timestamp: decoding them into datetimes would be wasted.
    serde = catalogue.topic("training.examples").serde(registry, logical_types=False)
    counts = ReadCounts()
    learner = plan.target.learner(key, settings.model_signing_key_id)
    publisher = None
    advanced = 0

    def counted(n: int) -> None:
        nonlocal advanced
        advanced += n
        if advance is not None:
            advance(n)

    # Read and decode in a child process while this one learns (Kafka, enough records).
    with read_ahead(plan.source, serde, plan.topic, plan.ranges, counts) as examples:
        if plan.publish:  # ready by the end of learning; created after the fork
            publisher = confirming_producer(settings, **{"message.max.bytes": MAX_RECORD_BYTES})
        learn(learner, examples, plan.topic, None if advance is None else counted)
    if advance is not None and counts.read > advanced:
        advance(counts.read - advanced)  # records read and not learned: the undecodable
    snapshot = replayed_snapshot(
        learner,
        plan.target,
        plan.topic,
        plan.ranges,
        version=plan.version,
        created=datetime.now(UTC),
        key=key,
        key_id=settings.model_signing_key_id,
        source=plan.source.name,
    )
    published_at = None
    unlearned = nothing_learned(plan, counts, learner.trained_examples)
    if publisher is not None and unlearned is not None:
        raise ReplayError(f"{unlearned}; nothing published")
    if publisher is not None:
        state = catalogue.topic("model.state")
        value = state.serde(registry).encode(snapshot)
        published_at = produce_one_confirmed(
            publisher, state.name, plan.target.published_as.encode(), value
        )
    return ModelReplay(
        plan,
        snapshot,
        counts,
        learner.trained_examples,
        published_at,
        learner.counters,
        learner.first_failure,
    )
