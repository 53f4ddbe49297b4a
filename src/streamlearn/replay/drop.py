"""``replay drop``: delete a shadow namespace that ``replay agents`` made.

Kafka keeps a shadow namespace until it is deleted: the copied input, the agents' outputs,
their state changelogs and consumer group; the manifest and the worker's log stay in
``$STREAMLEARN_DATA_DIR/replays/``. This deletes exactly those, by name, never by a
pattern that could reach past the namespace: the topology's topics under the prefix,
the topics named after the shadow's consumer group (Faust names a group's changelogs and
its assignor topic ``<group>-...``), the group and the two files. It refuses the live
namespace, and a namespace whose worker is still running.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.groups import TIMEOUT_S, consumers_of, refuse_if_active
from streamlearn.replay.shadow import (
    SHADOW_GROUP,
    files_owner,
    manifest_path,
    worker_log_path,
)
from streamlearn.settings import Settings
from streamlearn.topology import desired_topics, load_topology
from streamlearn.topology.catalogue import topology_path
from streamlearn.topology.namespace import Namespace


@dataclass(frozen=True)
class DropPlan:
    """What dropping namespace ``prefix`` deletes (only what exists)."""

    prefix: str
    topics: tuple[str, ...]
    groups: tuple[str, ...]
    files: tuple[Path, ...]

    @property
    def empty(self) -> bool:
        return not (self.topics or self.groups or self.files)

    def lines(self) -> list[str]:
        return [
            *(f"delete topic {topic}" for topic in self.topics),
            *(f"delete consumer group {group}" for group in self.groups),
            *(f"delete file {path}" for path in self.files),
        ]


def plan_drop(
    settings: Settings,
    prefix: str,
    topics: Iterable[str],
    groups: Iterable[str],
    force: bool = False,
) -> DropPlan:
    """What of namespace ``prefix`` to delete, given the cluster's ``topics`` and consumer
    ``groups`` (their Kafka names). A namespace without a replay's marks (its manifest, its
    consumer group or its agents' changelogs) is refused unless ``force``: a prefix is
    also how deployments share a cluster, and one was dropped whole."""
    Namespace(prefix)  # validates the prefix
    if not prefix or prefix == settings.topic_prefix:
        raise ReplayError(
            f"--into must name a shadow namespace, not the live one ({settings.topic_prefix!r})"
        )
    group = prefix + SHADOW_GROUP
    topology = load_topology(topology_path(settings))
    ours = {topic.name for topic in desired_topics(topology, prefix)}
    existing = set(topics)
    chosen = (ours & existing) | {name for name in existing if name.startswith(group + "-")}
    # The files are another namespace's when its manifest says so (`try1.` for `try1`).
    owner = files_owner(settings, prefix)
    files = () if owner not in (None, prefix) else (
        manifest_path(settings, prefix), worker_log_path(settings, prefix),
    )  # fmt: skip
    known_groups = set(groups)
    marked = (
        owner == prefix
        or group in known_groups
        or any(name.startswith(group + "-") for name in existing)
    )
    if chosen and not marked and not force:
        raise ReplayError(
            f"no replay into {prefix!r} is recorded here ({manifest_path(settings, prefix)}, "
            f"nor its consumer group {group}): it may be another deployment's namespace, "
            "which `replay drop` would delete whole. If it is a replay whose manifest was "
            "lost, pass --force"
        )
    return DropPlan(
        prefix,
        tuple(sorted(chosen)),
        (group,) if group in known_groups else (),
        tuple(path for path in files if path.exists()),
    )


def _admin(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings))


def plan_drop_on_cluster(settings: Settings, prefix: str, force: bool = False) -> DropPlan:
    """:func:`plan_drop` against the topics and groups the cluster has now."""
    admin = _admin(settings)
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
    groups = (group.group_id for group in listed.valid)
    return plan_drop(settings, prefix, topics, groups, force)


def drop_namespace(settings: Settings, plan: DropPlan) -> None:
    """Delete what ``plan`` lists: refused while the shadow's group has members (a replay
    still running), or while any group's members are assigned one of its topics, so no
    worker is left reading deleted topics."""
    group = plan.prefix + SHADOW_GROUP
    refuse_if_active(settings, group, "dropping its namespace")
    readers = consumers_of(settings, *plan.topics) if plan.topics else []
    if readers:
        said = ", ".join(
            f"{r.group} ({len(r.members)} member{'s' if len(r.members) > 1 else ''})"
            for r in readers
        )
        raise ReplayError(f"{plan.prefix!r} is being read by {said}: stop them before dropping it")
    admin = _admin(settings)
    if plan.groups:
        for name, future in admin.delete_consumer_groups(
            list(plan.groups), request_timeout=TIMEOUT_S
        ).items():
            _done(future, f"consumer group {name}", KafkaError.GROUP_ID_NOT_FOUND)
    if plan.topics:
        deleted = admin.delete_topics(list(plan.topics), operation_timeout=TIMEOUT_S)
        for name, future in deleted.items():
            _done(future, f"topic {name}", KafkaError.UNKNOWN_TOPIC_OR_PART)
    for path in plan.files:
        path.unlink(missing_ok=True)


def _done(future: Future[object], what: str, gone: int) -> None:
    """Wait for an admin deletion; one already gone (another drop) is fine."""
    try:
        future.result(timeout=TIMEOUT_S)
    except KafkaException as exc:
        if exc.args[0].code() != gone:
            raise ReplayError(f"{what} not deleted: {exc.args[0].str()}") from None
