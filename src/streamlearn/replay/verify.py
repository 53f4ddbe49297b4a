"""Prove a published model is exactly what its recorded inputs produce.

A snapshot records the offsets of ``training.examples`` it has learned up to. Its parent
(the version before it, when ``model.state`` still holds it) records where it started, so
the parent's model, fed the examples between the two, must give the snapshot's payload
byte for byte. A first version, a replayed one (its manifest says where it started) or one
whose parent was compacted away is recomputed from a fresh model from its start (offset 0
for the online learner). Any other result, or a snapshot that fails its signature, is a
difference, reported with the first thing that differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from streamlearn.models import SnapshotRejected, safe_pickle
from streamlearn.models.configured import gated_spec
from streamlearn.models.exceptions import UnknownSnapshotSpec
from streamlearn.models.keyring import Keyring
from streamlearn.models.online import OnlineLearner
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import recorded_spec
from streamlearn.models.specs import SPECS, ModelSpec
from streamlearn.replay.examples import PreparedRecord, ReadCounts
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.gate_verdict import GateVerdict, judge_again, promoted_before
from streamlearn.replay.history import ModelHistory, PublishedSnapshot, model_history
from streamlearn.replay.positions import PartitionRange, check_retention
from streamlearn.replay.read_ahead import read_ahead
from streamlearn.replay.rebuild import ModelTarget, learn, manifest_of
from streamlearn.replay.sources import KafkaSource, RecordSource
from streamlearn.serde import SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

ExamplesReader = Callable[[list[PartitionRange], ReadCounts], Iterable[PreparedRecord]]
"""``read(ranges, counts)``: the examples of ``ranges`` (from Kafka or the archive),
prepared for the learner (:func:`~streamlearn.replay.examples.prepared_records`)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of recomputing one version."""

    model_name: str
    version: int
    identical: bool
    detail: str
    """What differs first (or, when identical, what was recomputed)."""
    start: str
    """Where the recomputation started: ``v<parent>`` or ``scratch``."""
    ranges: tuple[PartitionRange, ...] = ()
    """What was read (from the window before the parent's offsets, see :attr:`learned_from`)."""
    examples: int = 0
    """Examples learned in the recomputation."""
    learned_from: Mapping[int, int] = field(default_factory=dict)
    """Partition → the offset learning started at (the parent's), where that is after the
    range's start."""

    @property
    def examples_read(self) -> str:
        """The ranges as learned, and from where they were read when that is earlier."""
        said = []
        for r in self.ranges:
            learned = self.learned_from.get(r.partition, r.start)
            read = f" (read from {r.start} for re-emitted copies)" if learned != r.start else ""
            said.append(f"[{r.partition}] {learned}..{r.end}{read}")
        return ", ".join(said) or "-"


def _short(digest: str) -> str:
    return digest[:12]


def _started_from(
    learner: OnlineLearner,
    parent: PublishedSnapshot | None,
    manifest: Mapping[str, Any] | None,
    baseline_of: Callable[[str, int], PublishedSnapshot | None] | None,
    promoted: Mapping[str, Any] | None = None,
) -> tuple[str | None, str | None]:
    """Load into ``learner`` what the version started from: its parent (``v3``; a gate
    judges against ``promoted``, see :func:`~streamlearn.replay.gate_verdict.promoted_before`)
    or, for a first version warm-started, the baseline its manifest names (``ctr@history
    v2``); (that, None), or (None, what went wrong), or (None, None) for a start from
    scratch."""
    warm = (manifest or {}).get("warm_start")
    if parent is not None and parent.rejected is None:
        try:
            learner.resume(parent.snapshot, promoted)
        except SnapshotRejected as exc:
            return None, f"its parent v{parent.version} cannot be loaded: {exc}"
        return f"v{parent.version}", None
    if warm is None:
        return None, None
    named = f"{warm['model_name']} v{warm['version']}"
    baseline = baseline_of(warm["model_name"], int(warm["version"])) if baseline_of else None
    if baseline is None:
        return None, f"cannot recompute: its baseline {named} is no longer on model.state"
    if baseline.rejected is not None:
        return None, f"its baseline {named} fails verification: {baseline.rejected}"
    try:
        learner.warm_start(baseline.snapshot)
    except SnapshotRejected as exc:
        return None, f"its baseline {named} cannot be loaded: {exc}"
    return named, None


def verify_version(
    history: ModelHistory,
    published: PublishedSnapshot,
    *,
    topic: str,
    watermarks: Mapping[int, tuple[int, int]],
    specs: Mapping[str, ModelSpec],
    key: SigningKey,
    read_examples: ExamplesReader,
    check_ranges: Callable[[list[PartitionRange]], None] | None = None,
    keyring: Keyring | None = None,
    baseline_of: Callable[[str, int], PublishedSnapshot | None] | None = None,
) -> Verdict:
    """Recompute ``published`` from its parent, its warm start's baseline (``baseline_of``
    finds a published snapshot by name and version) or from scratch, over Kafka topic
    ``topic`` (``training.examples``, whose partitions hold ``watermarks``: first and end
    offsets). ``check_ranges`` refuses ranges the examples' source does not hold (default:
    Kafka's retention, by ``watermarks``)."""
    snapshot = published.snapshot
    name, version = str(snapshot["model_name"]), published.version
    learned_from: dict[int, int] = {}  # filled below when resuming from the parent

    def verdict(
        identical: bool,
        detail: str,
        start: str = "-",
        ranges: tuple[PartitionRange, ...] = (),
        examples: int = 0,
    ) -> Verdict:
        return Verdict(name, version, identical, detail, start, ranges, examples, learned_from)

    if published.rejected is not None:
        return verdict(False, f"the published snapshot fails verification: {published.rejected}")
    try:
        spec = recorded_spec(snapshot, specs)
    except UnknownSnapshotSpec as exc:
        return verdict(False, f"cannot recompute: {exc}")
    target = ModelTarget.of_snapshot(snapshot, spec)
    learner = target.learner(key, None, keyring)  # a parent may be of the previous key
    ends = {
        int(o["partition"]): int(o["offset"]) for o in snapshot["offsets"] if o["topic"] == topic
    }
    parent_version = snapshot["parent_version"]
    parent = history.version(int(parent_version)) if parent_version else None
    manifest = manifest_of(snapshot)
    promoted, unjudged = None, None
    if learner.gate is not None and parent is not None:
        promoted, unjudged = promoted_before(history, parent)
    started, problem = _started_from(learner, parent, manifest, baseline_of, promoted)
    if problem is not None:
        return verdict(False, problem)
    if started is not None:
        start = started
        # From the window before the parent's offsets: read again, not learned, it tells
        # the learner which examples a re-emitted copy would repeat, as it knew live.
        window = learner.recent_examples.window
        learned_from.update({p: learner.next_offsets.get((topic, p), 0) for p in ends})
        starts = {
            p: max(learner.next_offsets.get((topic, p), 0) - window, watermarks.get(p, (0, 0))[0])
            for p in ends
        }
    else:
        recorded = {
            int(i["partition"]): int(i["start"]) for i in (manifest or {}).get("inputs", [])
        }
        starts = {p: recorded.get(p, 0) for p in ends}
        start = "scratch"
    ranges = []
    for partition, end in sorted(ends.items()):
        if partition not in watermarks:
            raise ReplayError(f"{topic} has no partition {partition} (snapshot {name} v{version})")
        log_start, log_end = watermarks[partition]
        if end > log_end:
            return verdict(
                False,
                f"it records {topic}[{partition}] up to {end}, past the log's end {log_end}",
                start,
            )
        ranges.append(PartitionRange(partition, starts[partition], end, log_start, log_end))
    # Checked from where learning starts: the window read again before a parent's offsets
    # is cut at the log's start, the examples after them are not (a cut there made a false
    # difference of an untampered version whose examples were past retention).
    needed = [
        replace(r, start=min(r.start, learned_from.get(r.partition, r.start))) for r in ranges
    ]
    if check_ranges is None:
        check_retention(topic, needed)
    else:
        check_ranges(needed)
    counts = ReadCounts()
    learned_before = learner.trained_examples
    learn(learner, read_examples(ranges, counts), topic)
    learned = learner.trained_examples - learned_before
    payload_digest = hashlib.sha256(safe_pickle.dumps(learner.model)).hexdigest()
    more = (tuple(ranges), learned)
    if learner.trained_examples != int(snapshot["trained_examples"]):
        return verdict(
            False,
            f"trained_examples: {learner.trained_examples} recomputed, "
            f"{snapshot['trained_examples']} published",
            start,
            *more,
        )
    if payload_digest != snapshot["payload_sha256"]:
        return verdict(
            False,
            f"payload differs: sha256 {_short(payload_digest)} recomputed, "
            f"{_short(str(snapshot['payload_sha256']))} published",
            start,
            *more,
        )
    identical = f"payload sha256 {_short(payload_digest)} identical"
    if learner.gate is None and "promoted" not in (snapshot.get("metrics") or {}):
        return verdict(True, identical, start, *more)  # no gate, then or now
    resumed = parent is not None and parent.rejected is None
    if (parent_version and not resumed) or manifest is not None:
        unjudged = unjudged or f"recomputed from {start}, not from its parent"
    if unjudged is not None:
        gate = GateVerdict(True, f"verdict not compared: {unjudged}")
    else:
        further = [
            PartitionRange(p, end, watermarks[p][1], *watermarks[p]) for p, end in ends.items()
        ]
        gate = judge_again(
            learner, snapshot, keyring or key, lambda: read_examples(further, counts), topic
        )
    return verdict(gate.same, f"{identical}; gate: {gate.said}", start, *more)


@dataclass(frozen=True)
class Verification:
    """What ``replay verify`` found: a verdict per version, and what else is under the
    model's keys on ``model.state`` (:attr:`ModelHistory.unusable`)."""

    verdicts: list[Verdict]
    unusable: tuple[str, ...] = ()


def verify_published(
    settings: Settings,
    registry: SchemaSource,
    name: str,
    version: int | None,
    every: bool,
    source: RecordSource | None = None,
) -> Verification:
    """Verify model ``name``'s newest version on ``model.state``, version ``version``, or
    (``every``) each version still there, oldest first, reading examples from ``source``
    (default: Kafka)."""
    source = source or KafkaSource(settings)
    key = settings.model_signing_key
    if key is None:
        raise ReplayError("verifying snapshots needs STREAMLEARN_MODEL_SIGNING_KEY")
    catalogue = TopicCatalogue.from_settings(settings)
    state = catalogue.topic("model.state")
    # Published versions, and the parents they are recomputed from, verify with the
    # keyring (during a rotation, the previous key too).
    keyring = Keyring.from_settings(settings)
    history = model_history(settings, state.serde(registry), state.name, name, keyring)
    if not history.snapshots:
        raise ReplayError(f"model.state holds no snapshot of {name}")
    if every:
        chosen = list(history.snapshots)
    else:
        wanted = history.highest_version if version is None else version
        found = history.version(wanted)
        if found is None:
            held = [s.version for s in history.snapshots]
            raise ReplayError(f"model.state holds no {name} v{wanted} (it holds {held})")
        chosen = [found]
    examples = catalogue.topic("training.examples")
    serde = examples.serde(registry, logical_types=False)  # the learner reads no timestamp
    watermarks = source.watermarks(examples.name)

    def read(ranges: list[PartitionRange], counts: ReadCounts) -> Iterator[PreparedRecord]:
        # Read ahead in a child process (Kafka, enough records), as `replay model` does.
        with read_ahead(source, serde, examples.name, ranges, counts) as prepared:
            yield from prepared

    def check(ranges: list[PartitionRange]) -> None:
        source.check(examples.name, ranges)

    # With the promotion gates the settings give, as the learner runs: each version's
    # verdict is decided again (replay/gate_verdict.py).
    specs = {name: gated_spec(spec, settings) for name, spec in SPECS.items()}
    baselines: dict[str, ModelHistory] = {}

    def baseline_of(baseline: str, baseline_version: int) -> PublishedSnapshot | None:
        if baseline not in baselines:
            baselines[baseline] = model_history(
                settings, state.serde(registry), state.name, baseline, keyring
            )
        return baselines[baseline].version(baseline_version)

    verdicts = [
        verify_version(
            history,
            published,
            topic=examples.name,
            watermarks=watermarks,
            specs=specs,
            key=key,
            read_examples=read,
            check_ranges=check,
            keyring=keyring,
            baseline_of=baseline_of,
        )
        for published in chosen
    ]
    return Verification(verdicts, history.unusable)
