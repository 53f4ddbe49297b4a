"""Compare declared topics with a cluster's and work out what `topics apply` would do.

Pure functions over plain data, so every rule (what is created, grown, aligned, refused)
is unit-tested without a broker; :mod:`streamlearn.topology.admin` reads the cluster and
executes the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamlearn.topology.copartitioned import unequal_inputs
from streamlearn.topology.model import Topology


@dataclass(frozen=True)
class DesiredTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]
    compacted_state: bool = False
    """A declared compacted topic, whose readers rebuild state per key from every
    partition: its partitions never grow. (A table's changelog is compacted too, but it
    must follow its source topic's partitions, so it is not one.)"""


@dataclass(frozen=True)
class ExistingTopic:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


@dataclass(frozen=True)
class CreateTopic:
    topic: DesiredTopic

    def describe(self) -> str:
        configs = ", ".join(f"{k}={v}" for k, v in sorted(self.topic.configs.items()))
        return (
            f"+ create {self.topic.name} (partitions={self.topic.partitions}, "
            f"replication={self.topic.replication_factor}, {configs})"
        )


@dataclass(frozen=True)
class AddPartitions:
    name: str
    current: int
    wanted: int

    def describe(self) -> str:
        return f"~ {self.name}: partitions {self.current} -> {self.wanted}"


@dataclass(frozen=True)
class AlterConfig:
    name: str
    key: str
    current: str | None
    wanted: str

    def describe(self) -> str:
        return f"~ {self.name}: {self.key} {self.current} -> {self.wanted}"


Change = CreateTopic | AddPartitions | AlterConfig


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.refusals

    def describe(self) -> str:
        if self.empty:
            return "no changes"
        lines = [change.describe() for change in self.changes]
        lines += [f"! refused: {reason}" for reason in self.refusals]
        return "\n".join(lines)


def desired_topics(
    topology: Topology, prefix: str = "", replication_factor: int | None = None
) -> list[DesiredTopic]:
    """The topology resolved against defaults, a name prefix and a replication override."""
    return [
        DesiredTopic(
            name=f"{prefix}{spec.name}",
            partitions=spec.partitions or topology.defaults.partitions,
            replication_factor=(
                replication_factor
                or spec.replication_factor
                or topology.defaults.replication_factor
            ),
            configs=spec.kafka_configs(),
            compacted_state=spec.compacted,
        )
        for spec in topology.topics
    ]


def _same_value(key: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if key == "cleanup.policy":
        return _policy(current) == _policy(wanted)
    return _as_the_broker_reports(current) == _as_the_broker_reports(wanted)


def _policy(value: str) -> set[str]:
    return {part.strip() for part in value.split(",")}


def _as_the_broker_reports(value: str) -> str:
    """``value`` as the broker reports it back once set: trimmed, a boolean in lower case,
    a number without leading zeros (``"TRUE"``, ``"060000"`` and ``"0.50"`` are stored as
    ``true``, ``60000`` and ``0.5``; compared as written, apply never converged)."""
    text = value.strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        return str(int(text))
    except ValueError:
        pass
    try:
        return repr(float(text))
    except ValueError:
        return text


def _plan_partitions(plan: Plan, topic: DesiredTopic, current: ExistingTopic) -> None:
    if topic.partitions < current.partitions:
        plan.refusals.append(
            f"{topic.name} has {current.partitions} partitions and Kafka cannot remove "
            f"partitions; declare {current.partitions} or more (declared {topic.partitions})"
        )
    elif topic.partitions > current.partitions and topic.compacted_state:
        # Compaction keeps a key's newest value per partition: grown, the topic holds a
        # key's old value in one partition and its next one (or its tombstone) in another
        # for good, and `_schemas` (read as one partition) stops the registry from starting.
        plan.refusals.append(
            f"{topic.name} is compacted (state topic) and has {current.partitions} "
            f"partition(s), declared {topic.partitions}: a key's next value would land in "
            "another partition than its old one, which compaction then never removes, so "
            "readers rebuilding its state could end on either; move its state to a new "
            "topic instead (or grow it by hand if you really mean it)"
        )
    elif topic.partitions > current.partitions:
        plan.changes.append(AddPartitions(topic.name, current.partitions, topic.partitions))


def plan_changes(
    desired: list[DesiredTopic], existing: dict[str, ExistingTopic], prefix: str | None = None
) -> Plan:
    """The plan; with the topology's ``prefix`` (the agents' topics, not a worker's
    changelogs), also refused: agent inputs left with unequal partition counts."""
    plan = Plan()
    if prefix is not None:
        after = {
            t.name: max(t.partitions, existing[t.name].partitions if t.name in existing else 0)
            for t in desired
        }
        plan.refusals.extend(unequal_inputs(after, prefix))
    for topic in desired:
        current = existing.get(topic.name)
        if current is None:
            plan.changes.append(CreateTopic(topic))
            continue
        _plan_partitions(plan, topic, current)
        if topic.replication_factor != current.replication_factor:
            plan.refusals.append(
                f"{topic.name} has replication factor {current.replication_factor}, declared "
                f"{topic.replication_factor}: changing it needs a partition reassignment "
                "(kafka-reassign-partitions), which apply does not do"
            )
        current_policy = _policy(current.configs.get("cleanup.policy", "delete"))
        wanted_policy = topic.configs.get("cleanup.policy", "delete")
        # A topic compacted only (state) must neither stop compacting nor start deleting:
        # with "compact,delete" the broker also drops what is past the retention.
        unsafe = current_policy == {"compact"} and _policy(wanted_policy) != {"compact"}
        if unsafe:
            plan.refusals.append(
                f"{topic.name} is compacted (state topic) and would become "
                f"cleanup.policy={wanted_policy}, letting the broker delete the only copy of its "
                "state; change it by hand if you really mean it"
            )
        for key, wanted in sorted(topic.configs.items()):
            if key == "cleanup.policy" and unsafe:
                continue
            if not _same_value(key, current.configs.get(key), wanted):
                plan.changes.append(AlterConfig(topic.name, key, current.configs.get(key), wanted))
    return plan
