"""Consumer groups as a replay sees them: who is consuming a topic now, and moving a stopped
group's committed offsets (what Kafka Streams' reset tool does)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.replay.exceptions import ReplayError
from streamlearn.settings import Settings

TIMEOUT_S = 30.0


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings))


@dataclass(frozen=True)
class GroupMembers:
    group: str
    members: tuple[str, ...]
    """Client ids of the active members."""


def active_members(settings: Settings, group: str) -> GroupMembers:
    """The group's active members (none: the group is stopped, or never existed)."""
    admin = _admin(settings)
    description = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group]
    members = description.result(timeout=TIMEOUT_S).members
    return GroupMembers(group, tuple(sorted(m.client_id for m in members)))


def consumers_of(settings: Settings, *topics: str) -> list[GroupMembers]:
    """Groups with active members assigned a partition of one of Kafka topics ``topics``."""
    ids = group_ids(settings)
    if not ids:
        return []
    admin = _admin(settings)
    found = []
    for group, future in admin.describe_consumer_groups(ids, request_timeout=TIMEOUT_S).items():
        members = future.result(timeout=TIMEOUT_S).members
        reading = [
            m.client_id
            for m in members
            if m.assignment is not None
            and any(tp.topic in topics for tp in m.assignment.topic_partitions)
        ]
        if reading:
            found.append(GroupMembers(group, tuple(sorted(reading))))
    return sorted(found, key=lambda g: g.group)


def group_ids(settings: Settings) -> list[str]:
    """The consumer groups the cluster knows (a group is known once it joined or committed)."""
    admin = _admin(settings)
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    return sorted(g.group_id for g in listed.valid)


def committed_offsets(settings: Settings, group: str) -> dict[tuple[str, int], int]:
    """(topic, partition) → the group's committed offset."""
    admin = _admin(settings)
    request = [ConsumerGroupTopicPartitions(group)]
    result = admin.list_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group]
    partitions = result.result(timeout=TIMEOUT_S).topic_partitions or []
    return {(tp.topic, tp.partition): tp.offset for tp in partitions if tp.offset >= 0}


@dataclass(frozen=True)
class OffsetMove:
    topic: str
    partition: int
    current: int | None
    target: int


def refuse_if_active(settings: Settings, group: str, before: str = "moving its offsets") -> None:
    members = active_members(settings, group)
    if members.members:
        raise ReplayError(
            f"consumer group {group} has {len(members.members)} active member(s) "
            f"({', '.join(members.members)}): stop them before {before}"
        )


def move_offsets(settings: Settings, group: str, moves: Iterable[OffsetMove]) -> None:
    """Commit the moves' targets for ``group`` (refused while the group has members)."""
    refuse_if_active(settings, group)
    partitions = [TopicPartition(m.topic, m.partition, m.target) for m in moves]
    if not partitions:
        return
    admin = _admin(settings)
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    result = admin.alter_consumer_group_offsets(request, request_timeout=TIMEOUT_S)[group]
    for tp in result.result(timeout=TIMEOUT_S).topic_partitions or []:
        if tp.error is not None:
            raise ReplayError(f"{group}: {tp.topic}[{tp.partition}] not moved: {tp.error}")


def plan_moves(
    current: Mapping[tuple[str, int], int], targets: Mapping[tuple[str, int], int]
) -> list[OffsetMove]:
    """Every target, with the offset it replaces (None: nothing committed)."""
    return [
        OffsetMove(topic, partition, current.get((topic, partition)), target)
        for (topic, partition), target in sorted(targets.items())
    ]
