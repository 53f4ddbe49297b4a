"""`topics apply` against the real broker, with a topic prefix unique to each test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streamlearn.settings import Settings
from streamlearn.topology import (
    RefusedChangeError,
    apply_plan,
    apply_topology,
    desired_topics,
    load_topology,
    parse_topology,
    plan_for_cluster,
)
from streamlearn.topology.plan import DesiredTopic
from tests.support import ordered_producer

REPO_ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = load_topology(REPO_ROOT / "topology" / "topics.yaml")


def _apply(admin: AdminClient, settings: Settings, text: str | None = None):  # type: ignore[no-untyped-def]
    topology = parse_topology(text) if text is not None else TOPOLOGY
    return apply_topology(admin, desired_topics(topology, settings.topic_prefix))


def _config(admin: AdminClient, topic: str, key: str) -> str:
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    return admin.describe_configs([resource])[resource].result(timeout=30)[key].value


def test_apply_twice_changes_nothing_the_second_time(
    admin: AdminClient, kafka_settings: Settings
) -> None:
    first = _apply(admin, kafka_settings)
    assert len(first.changes) == len(TOPOLOGY.topics)
    second = _apply(admin, kafka_settings)
    assert second.empty, second.describe()
    assert plan_for_cluster(admin, desired_topics(TOPOLOGY, kafka_settings.topic_prefix)).empty
    metadata = admin.list_topics(timeout=30)
    for spec in TOPOLOGY.topics:
        name = kafka_settings.topic_prefix + spec.name
        assert len(metadata.topics[name].partitions) == (
            spec.partitions or TOPOLOGY.defaults.partitions
        )
        assert _config(admin, name, "cleanup.policy") == spec.cleanup_policy


def test_model_state_is_compacted_and_takes_a_5_mb_snapshot(
    admin: AdminClient, kafka_settings: Settings, kafka_bootstrap: str
) -> None:
    _apply(admin, kafka_settings)
    topic = kafka_settings.topic_prefix + "model.state"
    assert _config(admin, topic, "cleanup.policy") == "compact"
    limit = TOPOLOGY.topic("model.state").max_message_bytes
    assert limit is not None
    payload = os.urandom(5 * 1024 * 1024)
    # Producer and consumer limits are raised together with the topic's.
    producer = ordered_producer(kafka_bootstrap, **{"message.max.bytes": limit})
    producer.produce(topic, key=b"ctr", value=payload)
    assert producer.flush(30) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "fetch.max.bytes": limit,
            "max.partition.fetch.bytes": limit,
            "receive.message.max.bytes": limit + 1024 * 1024,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        message = consumer.poll(30)
    finally:
        consumer.close()
    assert message is not None
    assert message.error() is None
    assert message.key() == b"ctr"
    assert message.value() == payload


def test_refused_changes_change_nothing(admin: AdminClient, kafka_settings: Settings) -> None:
    _apply(admin, kafka_settings)
    text = (REPO_ROOT / "topology" / "topics.yaml").read_text()
    state = (
        "  - name: model.state\n"
        '    key: model name (a version its promotion gate held back, model name + "~newest")\n'
        "    value_schema: ModelSnapshot\n"
    )
    as_delete = text.replace(
        state + "    cleanup_policy: compact", state + "    cleanup_policy: delete"
    )
    assert as_delete != text
    shrunk = as_delete.replace("partitions: 6", "partitions: 2")
    with pytest.raises(RefusedChangeError) as info:
        _apply(admin, kafka_settings, shrunk)
    message = str(info.value)
    assert "model.state is compacted (state topic)" in message
    assert "telemetry.events has 6 partitions and Kafka cannot remove partitions" in message
    # Nothing was applied, not even the changes that were allowed.
    assert (
        _config(admin, kafka_settings.topic_prefix + "model.state", "cleanup.policy") == "compact"
    )


def test_what_the_brokers_would_refuse_is_refused_by_the_plan_before_anything_changes(
    admin: AdminClient, kafka_settings: Settings
) -> None:
    """Found by a new user: `topics diff` passed an unknown config, a value Kafka refuses
    and more replicas than brokers; `apply` then created the first topic and failed on the
    next. The plan now asks the brokers (validate_only) and refuses it whole."""
    text = """\
version: 1
topics:
  - name: fine
    key: k
    value_schema: null
    cleanup_policy: delete
    retention: 1d
  - name: unknown-config
    key: k
    value_schema: null
    cleanup_policy: delete
    retention: 1d
    configs:
      no.such.config: "1"
  - name: bad-value
    key: k
    value_schema: null
    cleanup_policy: delete
    retention: 1d
    configs:
      min.insync.replicas: banana
  - name: three-replicas
    key: k
    value_schema: null
    cleanup_policy: delete
    retention: 1d
    replication_factor: 3
"""
    desired = desired_topics(parse_topology(text), kafka_settings.topic_prefix)
    plan = plan_for_cluster(admin, desired)
    prefix = kafka_settings.topic_prefix
    said = "\n".join(plan.refusals)
    assert f"{prefix}unknown-config: " in said
    assert f"{prefix}bad-value: " in said
    assert f"{prefix}three-replicas: " in said
    assert f"{prefix}fine" not in said
    with pytest.raises(RefusedChangeError):
        apply_topology(admin, desired)
    assert f"{prefix}fine" not in admin.list_topics(timeout=30).topics, "nothing was created"


def test_config_drift_is_aligned_and_partitions_grow(
    admin: AdminClient, kafka_settings: Settings
) -> None:
    _apply(admin, kafka_settings)
    text = (REPO_ROOT / "topology" / "topics.yaml").read_text()
    changed = text.replace(
        "  - name: telemetry.events\n    key: user id\n    value_schema: TelemetryEvent\n"
        "    cleanup_policy: delete\n    retention: 7d\n",
        "  - name: telemetry.events\n    key: user id\n    value_schema: TelemetryEvent\n"
        "    cleanup_policy: delete\n    retention: 3d\n    partitions: 8\n",
    )
    assert changed != text
    plan = _apply(admin, kafka_settings, changed)
    assert sorted(c.describe() for c in plan.changes) == [
        f"~ {kafka_settings.topic_prefix}telemetry.events: partitions 6 -> 8",
        f"~ {kafka_settings.topic_prefix}telemetry.events: retention.ms 604800000 -> 259200000",
    ]
    name = kafka_settings.topic_prefix + "telemetry.events"
    assert _config(admin, name, "retention.ms") == "259200000"
    assert len(admin.list_topics(timeout=30).topics[name].partitions) == 8
    assert _apply(admin, kafka_settings, changed).empty


def test_cli_apply_and_diff(kafka_settings: Settings) -> None:
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": kafka_settings.topic_prefix,
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamlearn", "topics", *args],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    dry = run("apply", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"+ create {kafka_settings.topic_prefix}model.state" in dry.stdout
    assert run("diff").stdout.count("+ create") == len(TOPOLOGY.topics), "dry run must not apply"
    applied = run("apply")
    assert applied.returncode == 0, applied.stderr
    assert f"applied {len(TOPOLOGY.topics)} change(s)" in applied.stdout
    diff = run("diff")
    assert diff.returncode == 0
    assert diff.stdout.strip() == "no changes"


def _compacted(kafka_settings: Settings, count: int) -> list[DesiredTopic]:
    return [
        DesiredTopic(
            name=f"{kafka_settings.topic_prefix}changelog-{index}",
            partitions=3,
            replication_factor=1,
            configs={"cleanup.policy": "compact"},
        )
        for index in range(count)
    ]


def test_a_topic_created_between_plan_and_apply_is_aligned_not_an_error(
    admin: AdminClient, kafka_settings: Settings
) -> None:
    """Two workers started together both plan "create"; the second to ask finds it made."""
    desired = _compacted(kafka_settings, 1)
    stale = plan_for_cluster(admin, desired)
    name = desired[0].name
    # The other worker's create, by an older release that did not compact.
    admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)])[name].result(30)
    assert apply_plan(admin, stale) == [name]
    assert apply_topology(admin, desired).empty is False
    assert plan_for_cluster(admin, desired).empty
    assert _config(admin, name, "cleanup.policy") == "compact"
    assert len(admin.list_topics(timeout=30).topics[name].partitions) == 3


def test_workers_applying_the_same_topics_at_once_all_succeed(
    admin: AdminClient, kafka_settings: Settings
) -> None:
    desired = _compacted(kafka_settings, 6)
    with ThreadPoolExecutor(max_workers=4) as pool:
        plans = list(
            pool.map(
                lambda _: apply_topology(
                    AdminClient({"bootstrap.servers": kafka_settings.kafka_bootstrap}), desired
                ),
                range(4),
            )
        )
    assert len(plans) == 4
    assert plan_for_cluster(admin, desired).empty
