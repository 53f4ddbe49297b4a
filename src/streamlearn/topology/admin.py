"""Read a cluster's topics and apply a :class:`~streamlearn.topology.plan.Plan` with AdminClient."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from streamlearn.topology.exceptions import RefusedChangeError, TopologyApplyError
from streamlearn.topology.plan import (
    AddPartitions,
    AlterConfig,
    CreateTopic,
    DesiredTopic,
    ExistingTopic,
    Plan,
    plan_changes,
)

REQUEST_TIMEOUT_S = 30.0


def _outcomes(
    futures: dict[Any, Future[Any]], action: str, tolerated: str | None = None
) -> tuple[list[str], list[str]]:
    """Wait for every request: (each failure said, the names that failed with ``tolerated``)."""
    failures = []
    tolerated_names = []
    for key, future in futures.items():
        name = getattr(key, "name", key)
        try:
            future.result(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            if exc.args[0].name() == tolerated:
                tolerated_names.append(name)
            else:
                failures.append(f"{action} {name}: {exc.args[0].str()}")
    return failures, tolerated_names


def _wait(futures: dict[Any, Future[Any]], action: str, tolerated: str | None = None) -> list[str]:
    """Wait for every request; the names whose request failed with ``tolerated``."""
    failures, tolerated_names = _outcomes(futures, action, tolerated)
    if failures:
        raise TopologyApplyError("; ".join(failures))
    return tolerated_names


def _new_topics(plan: Plan) -> list[NewTopic]:
    return [
        NewTopic(
            c.topic.name,
            num_partitions=c.topic.partitions,
            replication_factor=c.topic.replication_factor,
            config=c.topic.configs,
        )
        for c in plan.changes
        if isinstance(c, CreateTopic)
    ]


def _config_changes(plan: Plan) -> list[ConfigResource]:
    alters: dict[str, list[ConfigEntry]] = {}
    for change in plan.changes:
        if isinstance(change, AlterConfig):
            alters.setdefault(change.name, []).append(
                ConfigEntry(change.key, change.wanted, incremental_operation=AlterConfigOpType.SET)
            )
    return [
        ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=entries)
        for name, entries in alters.items()
    ]


def refused_by_cluster(admin: AdminClient, plan: Plan) -> list[str]:
    """What the brokers would refuse of the plan's creations and config changes, asked
    without changing anything (``validate_only``): a config Kafka does not know, a value it
    does not take, more replicas than brokers. (Without asking, `topics diff` passed them
    and `apply` created the topics before the first refused one.)"""
    refusals = []
    if new_topics := _new_topics(plan):
        failures, _ = _outcomes(
            admin.create_topics(new_topics, validate_only=True, request_timeout=REQUEST_TIMEOUT_S),
            "create",
            tolerated="TOPIC_ALREADY_EXISTS",  # created meanwhile: the next plan aligns it
        )
        refusals += failures
    if resources := _config_changes(plan):
        failures, _ = _outcomes(
            admin.incremental_alter_configs(
                resources, validate_only=True, request_timeout=REQUEST_TIMEOUT_S
            ),
            "alter configs of",
        )
        refusals += failures
    return refusals


def wait_until_visible(admin: AdminClient, names: Iterable[str], timeout_s: float) -> None:
    """Wait until every topic is in the broker's metadata with a leader for each partition.

    A create request completes when the controller has accepted it; the brokers learn of the
    topic a moment later. Returning before then would hand the next command an "unknown topic".
    """
    pending = set(names)
    deadline = time.monotonic() + timeout_s
    while pending:
        metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
        pending = {
            name
            for name in pending
            if name not in metadata.topics
            or metadata.topics[name].error is not None
            or any(p.leader < 0 for p in metadata.topics[name].partitions.values())
        }
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TopologyApplyError(f"topics not ready after {timeout_s:.0f}s: {sorted(pending)}")
        time.sleep(0.1)


def read_existing(admin: AdminClient, names: Iterable[str]) -> dict[str, ExistingTopic]:
    """Partitions, replication factor and the given configs of those topics that exist."""
    metadata = admin.list_topics(timeout=REQUEST_TIMEOUT_S)
    present = [name for name in names if name in metadata.topics]
    if not present:
        return {}
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in present]
    described = admin.describe_configs(resources, request_timeout=REQUEST_TIMEOUT_S)
    existing: dict[str, ExistingTopic] = {}
    for resource, future in described.items():
        entries = future.result(timeout=REQUEST_TIMEOUT_S)
        partitions = metadata.topics[resource.name].partitions
        first = partitions[min(partitions)] if partitions else None
        existing[resource.name] = ExistingTopic(
            name=resource.name,
            partitions=len(partitions),
            replication_factor=len(first.replicas) if first is not None else 0,
            configs={key: entry.value for key, entry in entries.items()},
        )
    return existing


def plan_for_cluster(
    admin: AdminClient,
    desired: list[DesiredTopic],
    *,
    ask_brokers: bool = True,
    prefix: str | None = None,
) -> Plan:
    """The changes that bring the cluster to ``desired``, with what streamlearn refuses
    (shrinking, un-compacting a state topic; with the topology's ``prefix``, an agent's
    inputs left with unequal partition counts) and, with ``ask_brokers``, what the brokers
    would refuse."""
    plan = plan_changes(desired, read_existing(admin, [t.name for t in desired]), prefix)
    if ask_brokers and not plan.refusals and plan.changes:
        plan.refusals.extend(refused_by_cluster(admin, plan))
    return plan


def apply_plan(admin: AdminClient, plan: Plan) -> list[str]:
    """Execute every change of the plan; a plan with refusals changes nothing.

    Returns the topics the plan would create that someone else created in the meantime
    (workers of one group start together and each declares its changelogs): not an error,
    but their settings are another creator's, so the caller plans again.
    """
    if plan.refusals:
        raise RefusedChangeError(plan.refusals)
    created_elsewhere: list[str] = []
    if new_topics := _new_topics(plan):
        created_elsewhere = _wait(
            admin.create_topics(new_topics, request_timeout=REQUEST_TIMEOUT_S),
            "create",
            tolerated="TOPIC_ALREADY_EXISTS",
        )
        wait_until_visible(admin, [t.topic for t in new_topics], REQUEST_TIMEOUT_S)
    grows = [c for c in plan.changes if isinstance(c, AddPartitions)]
    if grows:
        _wait(
            admin.create_partitions(
                [NewPartitions(c.name, c.wanted) for c in grows], request_timeout=REQUEST_TIMEOUT_S
            ),
            "add partitions to",
        )
    if resources := _config_changes(plan):
        _wait(
            admin.incremental_alter_configs(resources, request_timeout=REQUEST_TIMEOUT_S),
            "alter configs of",
        )
    return created_elsewhere


def apply_topology(
    admin: AdminClient,
    desired: list[DesiredTopic],
    timeout_s: float = REQUEST_TIMEOUT_S,
    prefix: str | None = None,
) -> Plan:
    """Plan, apply, and wait until the cluster reports the declared state; returns the plan.

    Brokers apply config changes and new partitions asynchronously, so the cluster is
    re-read until a fresh plan is empty: a second apply right after this one finds nothing
    to do. With the topology's ``prefix``, a plan leaving an agent's inputs with unequal
    partition counts is refused (topology/copartitioned.py).
    """
    plan = plan_for_cluster(admin, desired, prefix=prefix)
    if apply_plan(admin, plan):
        # Another creator won the race; align what it made (once: the topics exist now).
        apply_plan(admin, plan_for_cluster(admin, desired))
    deadline = time.monotonic() + timeout_s
    # Waiting for changes already made: the brokers took them, nothing to ask again.
    while not (remaining := plan_for_cluster(admin, desired, ask_brokers=False)).empty:
        if time.monotonic() > deadline:
            raise TopologyApplyError(
                f"cluster did not converge within {timeout_s:.0f}s: {remaining.describe()}"
            )
        time.sleep(0.2)
    return plan
