"""``replay agents``: run agents over retained input into a shadow namespace.

Live outputs are never touched: the chosen agents' input range is copied (same partition,
key, value and timestamp, in offset order) into the shadow namespace's topics, and the
same agents run there as a bounded worker (its own consumer group and changelogs, by the
namespace) until they have committed every input, then stop. A copy rather than reading
the live topics in place keeps the runtime exactly as it runs live: same partitions, same
order, hence the same outputs ("storage is cheap: replicate, don't be clever"). The
manifest (agents, live prefix, ranges, settings that change what agents do, code version)
is written beside the shadow topics' data, in ``$STREAMLEARN_DATA_DIR/replays/``, where
``replay diff`` reads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

import streamlearn
from streamlearn.kafka_clients import PRODUCE_TIMEOUT_S, confluent_config, producer_config
from streamlearn.orphan_watch import SUPERVISOR_PID_ENV
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.groups import TIMEOUT_S, committed_offsets
from streamlearn.replay.positions import PartitionRange, Position, resolve
from streamlearn.replay.sources import KafkaSource, RecordSource
from streamlearn.runtime.group_settings import OUTPUT_SETTINGS
from streamlearn.runtime.topic_reader import end_offsets
from streamlearn.secret_settings import signing_environment
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from streamlearn.topology.catalogue import topology_path
from streamlearn.topology.namespace import Namespace
from streamlearn.topology.plan import DesiredTopic

SHADOW_GROUP = "streamlearn-replay"
STALL_S = 600.0
"""How long the shadow worker may commit nothing before `replay agents` gives up on it."""
AGENT_SETTINGS = OUTPUT_SETTINGS
"""Settings that change what the agents output (recorded in the manifest; the workers of a
group compare the same ones, runtime/group_settings.py)."""


REPLAYABLE = ("preprocess", "sessionise", "label-join", "learner")
"""The agents `replay agents` runs and `replay diff` compares."""


def step_topics(agents: Sequence[str]) -> tuple[list[str], list[str]]:
    """(root inputs: read by the agents and produced by none of them, every input)."""
    unknown = sorted(set(agents) - set(REPLAYABLE))
    if unknown:
        raise ReplayError(f"unknown agents {unknown} for replay agents; it runs {list(REPLAYABLE)}")
    # Refused here, before the copy: the worker refuses both after it (a partial namespace).
    if not agents:
        raise ReplayError(f"--only names no agent; it runs {list(REPLAYABLE)}")
    twice = sorted({name for name in agents if agents.count(name) > 1})
    if twice:
        raise ReplayError(f"--only names {', '.join(twice)} twice: each agent runs once")
    classes = {name: _step_class(name) for name in agents}
    inputs = [t for c in classes.values() for t in c.inputs]
    outputs = {t for c in classes.values() for t in c.outputs}
    roots = [t for t in dict.fromkeys(inputs) if t not in outputs]
    return roots, list(dict.fromkeys(inputs))


def _step_class(name: str) -> Any:
    """The step class of agent ``name``: its declared inputs and outputs."""
    from streamlearn.agents.label_join import LabelJoinStep
    from streamlearn.agents.learner import LearnerStep
    from streamlearn.agents.preprocess import PreprocessStep
    from streamlearn.agents.sessionise import SessioniseStep

    classes = {step.name: step for step in (PreprocessStep, SessioniseStep, LabelJoinStep,
                                           LearnerStep)}  # fmt: skip
    return classes[name]


@dataclass(frozen=True)
class ShadowPlan:
    agents: tuple[str, ...]
    live_prefix: str
    shadow_prefix: str
    ranges: dict[str, tuple[PartitionRange, ...]]
    """Live root topic (topology name) → its ranges."""
    inputs: tuple[str, ...]
    source: RecordSource

    @property
    def records(self) -> int:
        return sum(r.count for ranges in self.ranges.values() for r in ranges)

    def lines(self) -> list[str]:
        lines = [f"run {', '.join(self.agents)} in namespace {self.shadow_prefix!r} "
                 f"(group {self.shadow_prefix}{SHADOW_GROUP}), read from "
                 f"{self.source.name}:"]  # fmt: skip
        for topic, ranges in self.ranges.items():
            lines += [
                f"  {self.live_prefix}{topic}[{r.partition}] offsets {r.start}..{r.end} "
                f"({r.count:,} records)"
                for r in ranges
                if r.count
            ]
        return lines


def _replay_file(settings: Settings, shadow_prefix: str, suffix: str) -> Path:
    # `try1` and `try1.` share these names (files made before kept theirs): whose they are
    # is the manifest's `shadow_prefix` (files_owner).
    return settings.data_dir / "replays" / f"{shadow_prefix.rstrip('.') or 'shadow'}{suffix}"


def files_owner(settings: Settings, shadow_prefix: str) -> str | None:
    """The namespace whose replay the manifest at ``shadow_prefix``'s file name records
    (None: no manifest), e.g. ``strict.`` for ``strict``, whose files share its name."""
    path = manifest_path(settings, shadow_prefix)
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text()).get("shadow_prefix")
    except (ValueError, AttributeError):
        return shadow_prefix  # unreadable: not someone else's as far as anyone can tell
    return shadow_prefix if recorded is None else str(recorded)


def manifest_path(settings: Settings, shadow_prefix: str) -> Path:
    return _replay_file(settings, shadow_prefix, ".json")


def worker_log_path(settings: Settings, shadow_prefix: str) -> Path:
    """Where the shadow worker of ``replay agents`` logs."""
    return _replay_file(settings, shadow_prefix, "-worker.log")


def plan_shadow(
    settings: Settings,
    agents: Sequence[str],
    shadow_prefix: str,
    start: Position,
    end: Position,
    source: RecordSource | None = None,
) -> ShadowPlan:
    """The input ranges to copy from ``source`` (default: Kafka) and the agents to run."""
    source = source or KafkaSource(settings)
    Namespace(shadow_prefix)  # validates the prefix
    if shadow_prefix == settings.topic_prefix or not shadow_prefix:
        raise ReplayError("--into must name another namespace than the live one")
    if not any(c.isalnum() for c in shadow_prefix):
        # `.` made topics `.telemetry.events` and shared the files of `--into shadow`.
        raise ReplayError(f"--into {shadow_prefix!r}: a namespace holds a letter or digit (try1.)")
    earlier = manifest_path(settings, shadow_prefix)
    owner = files_owner(settings, shadow_prefix)
    if owner is not None and owner != shadow_prefix:
        raise ReplayError(
            f"{earlier} records the replay into {owner!r}, whose files {shadow_prefix!r} would "
            f"share: replay --into another namespace, or drop that one first (`streamlearn "
            f"replay drop --into {owner}`)"
        )
    if earlier.is_file():
        agents_before = ", ".join(json.loads(earlier.read_text()).get("agents") or [])
        raise ReplayError(
            f"{shadow_prefix} already holds a replay (of {agents_before}): `replay diff` "
            f"it, or delete it with `streamlearn replay drop --into {shadow_prefix}`; or "
            "replay --into a fresh namespace"
        )
    # The run's check, made by the plan on the topics that exist already: a dry run said
    # yes to a namespace the run then refused.
    topology = load_topology(topology_path(settings))
    there = set(_admin(settings).list_topics(timeout=TIMEOUT_S).topics)
    existing = [t.name for t in desired_topics(topology, shadow_prefix) if t.name in there]
    _refuse_records_in(settings, existing, shadow_prefix)
    roots, inputs = step_topics(agents)
    ranges = {}
    for topic in roots:
        kafka = settings.topic_prefix + topic
        resolved = resolve(source, kafka, start, end)
        source.check(kafka, resolved)
        ranges[topic] = resolved
    if not any(r.count for resolved in ranges.values() for r in resolved):
        held = ", ".join(settings.topic_prefix + topic for topic in ranges)
        raise ReplayError(f"nothing to replay: {held} hold no records in that range")
    return ShadowPlan(
        tuple(agents), settings.topic_prefix, shadow_prefix, ranges, tuple(inputs), source
    )


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings))


def shadow_topics(desired: Sequence[DesiredTopic], plan: ShadowPlan) -> list[DesiredTopic]:
    """The topology's topics in the shadow namespace, those the copy writes keeping the
    timestamps they are given: where the topology has the broker stamp a topic at append
    (``LogAppendTime``, e.g. telemetry.events, whose broker time preprocess compares
    ``received_ts`` with), the copy would otherwise get the time of the copy, and a replay
    would judge its records against another clock than live did."""
    copied = {plan.shadow_prefix + topic for topic in plan.ranges}
    return [
        replace(topic, configs={**topic.configs, "message.timestamp.type": "CreateTime"})
        if topic.name in copied
        else topic
        for topic in desired
    ]


def _refuse_records_in(settings: Settings, names: Sequence[str], shadow_prefix: str) -> None:
    """Refuse the namespace when one of its topics ``names`` holds records: an earlier
    replay (interrupted, or its manifest lost) left them there. Any topic of the namespace,
    not only those the copy writes."""
    for name in names:
        if any(end for _, end in end_offsets(settings, name).values()):
            raise ReplayError(
                f"{name} already holds records (a replay interrupted, or its manifest "
                f"lost): replay --into a fresh namespace, or delete this one with "
                f"`streamlearn replay drop --into {shadow_prefix}` (--force if no replay "
                "is recorded for it)"
            )


def copy_inputs(
    settings: Settings, plan: ShadowPlan, advance: Callable[[int], None] | None = None
) -> None:
    """Create the shadow namespace's topics and copy the ranges into them."""
    topology = load_topology(topology_path(settings))
    desired = desired_topics(topology, plan.shadow_prefix)
    apply_topology(_admin(settings), shadow_topics(desired, plan))
    _refuse_records_in(settings, [topic.name for topic in desired], plan.shadow_prefix)
    producer = Producer(producer_config(settings, **{"linger.ms": 20, "enable.idempotence": True}))
    for topic, ranges in plan.ranges.items():
        wanted = {r.partition: (r.start, r.end) for r in ranges if r.count}
        for record in plan.source.read(plan.live_prefix + topic, wanted):
            producer.produce(
                plan.shadow_prefix + topic,
                key=record.key,
                value=record.value,
                partition=record.partition,
                timestamp=record.timestamp_ms,
            )
            producer.poll(0)
            if advance is not None:
                advance(1)
    if producer.flush(PRODUCE_TIMEOUT_S):
        raise ReplayError("the copy into the shadow namespace was not confirmed by Kafka")


@dataclass(frozen=True)
class _Progress:
    """How far the shadow worker has committed its inputs (root and intermediate)."""

    committed: int
    """Records committed, over every input partition."""
    total: int
    """Records the input partitions hold now."""
    done: bool
    """Every input partition committed to its end."""


def _progress(settings: Settings, plan: ShadowPlan) -> _Progress:
    group = plan.shadow_prefix + SHADOW_GROUP
    committed = committed_offsets(settings, group)
    done_so_far, total, done = 0, 0, True
    for topic in plan.inputs:
        name = plan.shadow_prefix + topic
        for partition, (_, end) in end_offsets(settings, name).items():
            at = min(committed.get((name, partition), 0), end)
            done_so_far, total = done_so_far + at, total + end
            done = done and at >= end
    return _Progress(done_so_far, total, done)


def run_shadow(settings: Settings, plan: ShadowPlan, log: Path) -> int:
    """Run the agents in the shadow namespace until every input is committed; returns the
    worker's exit code (0 after a clean stop)."""
    env = {**os.environ, **signing_environment(settings)}
    env["STREAMLEARN_TOPIC_PREFIX"] = plan.shadow_prefix
    # The cluster the copy went to: `--bootstrap-servers` is no variable the worker would
    # inherit, and it started on the environment's cluster (or 127.0.0.1:9092) instead.
    env["STREAMLEARN_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    # The worker stops itself when this process is gone (killed: `timeout`, a CI job's
    # end), as `up`'s parts do; it ran on for good, a member of the shadow's group.
    env[SUPERVISOR_PID_ENV] = str(os.getpid())
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "agents", "run",
             "--only", ",".join(plan.agents), "--group", SHADOW_GROUP],
            env=env, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        last, since = -1, time.monotonic()
        settled = 0
        # Twice in a row: an intermediate topic (events.clean) may still be growing.
        while settled < 2:
            if worker.poll() is not None:
                raise ReplayError(f"the shadow worker exited with {worker.returncode}; see {log}")
            progress = _progress(settings, plan)
            now = time.monotonic()
            # Given up on only when it stops committing: a replay of days of input takes
            # as long as it takes (a fixed 600 s stopped any longer one while it worked).
            if progress.committed != last:
                last, since = progress.committed, now
            elif now - since > STALL_S:
                raise ReplayError(
                    f"the shadow worker committed nothing for {STALL_S:.0f}s "
                    f"({progress.committed:,} of {progress.total:,} input records "
                    f"committed); see {log}"
                )
            settled = settled + 1 if progress.done else 0
            time.sleep(1.0)
    finally:
        if worker.poll() is None:
            worker.terminate()
        code = worker.wait(timeout=120)
    return code


def write_manifest(settings: Settings, plan: ShadowPlan) -> Path:
    manifest = {
        "kind": "replay-agents",
        "agents": list(plan.agents),
        "live_prefix": plan.live_prefix,
        "shadow_prefix": plan.shadow_prefix,
        "group": plan.shadow_prefix + SHADOW_GROUP,
        "inputs": {t: [asdict(r) for r in ranges] for t, ranges in plan.ranges.items()},
        "source": plan.source.name,
        "settings": {name: _jsonable(getattr(settings, name, None)) for name in AGENT_SETTINGS},
        "code_version": streamlearn.__version__,
    }
    path = manifest_path(settings, plan.shadow_prefix)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value if value is None or isinstance(value, int | float | str | bool) else str(value)


def read_manifest(settings: Settings, shadow_prefix: str) -> dict[str, Any]:
    path = manifest_path(settings, shadow_prefix)
    if not path.is_file():
        raise ReplayError(f"no replay into {shadow_prefix!r} here ({path} is missing)")
    manifest: dict[str, Any] = json.loads(path.read_text())
    owner = manifest.get("shadow_prefix", shadow_prefix)
    if owner != shadow_prefix:
        raise ReplayError(
            f"no replay into {shadow_prefix!r} here ({path} is the replay into {owner!r})"
        )
    return manifest
