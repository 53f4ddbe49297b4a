"""`streamlearn acls apply` against the embedded broker with Kafka's StandardAuthorizer.

One secure broker with ACLs for the module (`kafka start --secure --acls`): a SCRAM user
per part, the operator's `streamlearn` a super user. After `topics apply` and `acls
apply` (as the operator), each part runs under its own user, in a namespace (so the
namespaced names are what is granted): the registry keeps `_schemas`, the collector
produces, a preprocess worker (aiokafka under Faust) cleans into `events.clean` with its
group and changelogs, a prediction worker loads a snapshot from `model.state` and answers.
A part reaching beyond its plan is refused by the broker.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from typer.testing import CliRunner

from streamlearn.cli import app as cli
from streamlearn.collector.app import create_collector_app
from streamlearn.dashboard.follower import GROUP_PREFIX as DASHBOARD_GROUP_PREFIX
from streamlearn.kafka_clients import confluent_config, producer_config
from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.kafka_local.secure import SecureMaterial
from streamlearn.registry import create_registry_app
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from streamlearn.topology.acl_admin import AclApplyError, apply_acls
from streamlearn.topology.acls import Acl
from streamlearn.topology.catalogue import SHIPPED_TOPOLOGY
from streamlearn.topology.namespace import Namespace
from streamlearn.topology.registration import register_topology_schemas
from tests.agent_workers import worker_environment
from tests.serving_support import KEY, instances, snapshot, start_worker
from tests.support import serve_app

PREFIX = "acl."
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, SecureMaterial]]:
    broker = embedded_kafka(
        Settings(), port=free_port(), data_dir=tmp_path_factory.mktemp("acls") / "kafka",
        acls=True,
    )  # fmt: skip
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    assert broker.config.secure is not None
    try:
        yield status.bootstrap, broker.config.secure
    finally:
        broker.stop()


def _as(part: str | None, bootstrap: str, material: SecureMaterial, **more: Any) -> Settings:
    """Settings of part ``part`` under its own user (None: the operator, a super user)."""
    path = material.client_settings_path if part is None else material.part_settings_path(part)
    loaded = yaml.safe_load(path.read_text())
    return Settings(kafka_bootstrap=bootstrap, topic_prefix=PREFIX, **loaded, **more)


def _cli(settings_file: Path, bootstrap: str, *args: str) -> Any:
    env = {
        "STREAMLEARN_CONFIG_FILE": str(settings_file),
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": PREFIX,
    }
    return CliRunner().invoke(cli, ["acls", *args], env=env)


def _refusal_reading(settings: Settings, topic: str, group: str) -> KafkaError | None:
    consumer = Consumer(confluent_config(settings, **{"group.id": group}))
    try:
        consumer.assign([TopicPartition(PREFIX + topic, 0, 0)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is not None:
                return message.error()
        return None
    finally:
        consumer.close()


def _refusal_writing(settings: Settings, topic: str) -> KafkaError | None:
    errors: list[KafkaError | None] = []
    producer = Producer(producer_config(settings, **{"message.timeout.ms": 15000}))
    producer.produce(PREFIX + topic, b"x", on_delivery=lambda error, _: errors.append(error))
    producer.flush(20)
    return errors[0] if errors else None


def _topics_applied(bootstrap: str, material: SecureMaterial) -> None:
    """The topology's topics, created as the operator (idempotent)."""
    operator = _as(None, bootstrap, material)
    topology = load_topology(SHIPPED_TOPOLOGY)
    apply_topology(AdminClient(confluent_config(operator)), desired_topics(topology, PREFIX, 1))


def _topics_and_acls_applied(bootstrap: str, material: SecureMaterial) -> None:
    """The topics and the plan's ACLs, as the operator (both idempotent: after another test
    that applied them, nothing to add)."""
    _topics_applied(bootstrap, material)
    applied = _cli(material.client_settings_path, bootstrap, "apply")
    assert applied.exit_code == 0, applied.output


def test_the_plan_is_applied_once_and_nothing_else_is_allowed(
    acl_broker: tuple[str, SecureMaterial],
) -> None:
    bootstrap, material = acl_broker
    _topics_applied(bootstrap, material)

    refused = _cli(material.part_settings_path("ops"), bootstrap, "apply")
    assert refused.exit_code == 1
    assert "may not manage ACLs" in str(refused.exception or refused.output)
    first = _cli(material.client_settings_path, bootstrap, "apply")
    assert first.exit_code == 0, first.output
    assert re.search(r"acl\.streamlearn-preprocess-\s+PREFIXED", first.output), first.output
    added = int(first.output.rsplit("added ", 1)[1].split()[0])
    assert added > 100, first.output
    again = _cli(material.client_settings_path, bootstrap, "apply", "--dry-run")
    assert again.exit_code == 0
    assert f"would add 0 of {added} ACL(s)" in again.output

    # Beyond the plan: the collector reads nothing (not even a group), the dashboard
    # only sees events.clean's offsets, preprocess writes no model.state, a part cannot
    # grant itself more.
    collector = _as("collector", bootstrap, material)
    error = _refusal_reading(collector, "events.clean", "collector-reads")
    assert error is not None
    assert error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    dashboard = _as("dashboard", bootstrap, material)
    # The dashboard's own group (in the namespace): outside it the group's refusal and the
    # topic's raced, whichever of librdkafka's requests answered first.
    dashboard_group = Namespace(PREFIX).group(f"{DASHBOARD_GROUP_PREFIX}{uuid.uuid4().hex}")
    error = _refusal_reading(dashboard, "events.clean", dashboard_group)
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    preprocess = _as("preprocess", bootstrap, material)
    error = _refusal_writing(preprocess, "model.state")
    assert error is not None
    assert error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    more = Acl("User:streamlearn-preprocess", "TOPIC", PREFIX + "model.state", "LITERAL", "WRITE")
    with pytest.raises(AclApplyError, match="may not manage ACLs"):
        apply_acls(AdminClient(confluent_config(preprocess)), [more])
    with pytest.raises(AclApplyError, match="listing ACLs: this principal may not manage"):
        apply_acls(AdminClient(confluent_config(preprocess)), [more], dry_run=True)


async def test_each_part_works_under_its_own_principal(
    acl_broker: tuple[str, SecureMaterial], tmp_path: Path
) -> None:
    bootstrap, material = acl_broker
    # Without this, the test passed only after the one above.
    _topics_and_acls_applied(bootstrap, material)
    broker_log = material.directory.parent / "logs" / "server.log"
    seen = len(broker_log.read_text())  # the other test's refusals are before this
    registry_runner, registry_url = await serve_app(
        create_registry_app(_as("registry", bootstrap, material))
    )
    runners = [registry_runner]
    worker = process = None
    try:
        operator = _as(None, bootstrap, material, schema_registry_url=registry_url)
        await asyncio.to_thread(register_topology_schemas, operator, SHIPPED_TOPOLOGY)
        preprocess = _as("preprocess", bootstrap, material, schema_registry_url=registry_url,
                         data_dir=tmp_path)  # fmt: skip
        # One changelog as an older version made it (the broker's segment settings): the
        # agent sets its own on it, which its ACLs must allow.
        await asyncio.to_thread(_create_topic_as_before, operator, EXISTING_CHANGELOG)
        env = worker_environment(preprocess, STREAMLEARN_CONFIG_FILE=str(
            material.part_settings_path("preprocess")))  # fmt: skip
        log = tmp_path / "preprocess.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlearn", "agents", "run", "--only", "preprocess",
                 "--group", "streamlearn-preprocess"],
                env=env, stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip

        # While it joins: the collector produces, a prediction worker loads a snapshot
        # the learner's user published.
        collector_runner, collector_url = await serve_app(create_collector_app(
            _as("collector", bootstrap, material, schema_registry_url=registry_url)))  # fmt: skip
        runners.append(collector_runner)
        event_id = str(uuid.uuid4())
        body = [{"event_id": event_id, "event_type": "page_view", "user_id": "u-1",
                 "app_version": "web-1"}]  # fmt: skip
        async with (
            aiohttp.ClientSession(headers={"User-Agent": FIREFOX}) as session,
            session.post(f"{collector_url}/v1/events", json=body) as response,
        ):
            assert response.status in (200, 202), await response.text()
        await asyncio.to_thread(_publish_snapshot, bootstrap, material, registry_url)
        serve = _as("serve", bootstrap, material, schema_registry_url=registry_url,
                    model_signing_key=KEY, models=["ctr"])  # fmt: skip
        worker = await start_worker(serve)
        await worker.wait(lambda: worker.serving.store.version("ctr") == 1, timeout_s=60)
        status, answer = await worker.predict(instances(1)[0])
        assert status == 200, answer

        # preprocess (its group, its changelogs, its output) under its own user.
        found = await asyncio.to_thread(_read_clean, operator, registry_url)
        assert found == [event_id], log.read_text()[-3000:]
        assert process.poll() is None, log.read_text()[-3000:]
        # Its changelogs roll a segment every 10 minutes (so compaction can reach what
        # they hold), the one made before too.
        segments = await asyncio.to_thread(_changelog_segments, operator)
        assert EXISTING_CHANGELOG in segments
        assert set(segments.values()) == {"600000"}, segments
    finally:
        if worker is not None:
            await worker.close()
        for runner in runners:
            await runner.cleanup()
        if process is not None:
            process.terminate()
            assert process.wait(timeout=60) == 0, log.read_text()[-3000:]
    denied = [line for line in broker_log.read_text()[seen:].splitlines() if "Denied" in line]
    assert denied == [], "a part needed more than its plan"


EXISTING_CHANGELOG = PREFIX + "streamlearn-preprocess-preprocess-event-ids-changelog"


def _create_topic_as_before(operator: Settings, name: str) -> None:
    admin = AdminClient(confluent_config(operator))
    source = PREFIX + "telemetry.events"
    partitions = len(admin.list_topics(source, timeout=30).topics[source].partitions)
    topic = NewTopic(name, partitions, 1, config={"cleanup.policy": "compact"})
    admin.create_topics([topic])[name].result(30)


def _changelog_segments(operator: Settings) -> dict[str, str]:
    """``segment.ms`` of each of preprocess's changelogs."""
    admin = AdminClient(confluent_config(operator))
    prefix = PREFIX + "streamlearn-preprocess-"
    topics = admin.list_topics(timeout=30).topics
    names = [n for n in topics if n.startswith(prefix) and n.endswith("-changelog")]
    found = {}
    for name in names:
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        [configs] = admin.describe_configs([resource]).values()
        found[name] = configs.result(30)["segment.ms"].value
    return found


def _publish_snapshot(bootstrap: str, material: SecureMaterial, registry_url: str) -> None:
    learner = _as("learner", bootstrap, material, schema_registry_url=registry_url)
    with RegistryClient(registry_url) as client:
        serde = AvroSerde.for_topic(client, PREFIX + "model.state", "ModelSnapshot")
        producer = Producer(producer_config(learner))
        producer.produce(PREFIX + "model.state", key=b"ctr", value=serde.encode(snapshot(1)))
        assert producer.flush(30) == 0


def _read_clean(operator: Settings, registry_url: str) -> list[str]:
    name = PREFIX + "events.clean"
    consumer = Consumer(confluent_config(operator, **{"group.id": "acl-check"}))
    found: list[str] = []
    try:
        with RegistryClient(registry_url) as client:
            serde = AvroSerde.for_topic(client, name, "CleanEvent")
            partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
            consumer.assign([TopicPartition(name, p, 0) for p in partitions])
            deadline = time.monotonic() + 90
            while not found and time.monotonic() < deadline:
                for message in consumer.consume(100, timeout=1):
                    if message.error() is None and message.value() is not None:
                        found.append(str(serde.decode(message.value())["event_id"]))
    finally:
        consumer.close()
    return found


def test_a_cluster_without_an_authorizer_is_named_as_such(kafka_bootstrap: str) -> None:
    """The suite's broker (PLAINTEXT, no authorizer) refuses ACL requests."""
    settings = Settings(kafka_bootstrap=kafka_bootstrap)
    more = Acl("User:streamlearn-serve", "TOPIC", "model.state", "LITERAL", "READ")
    with pytest.raises(AclApplyError, match="the cluster has no authorizer"):
        apply_acls(AdminClient(confluent_config(settings)), [more])
    # A dry run asks for no change, but "would add 1" would be false: apply cannot.
    with pytest.raises(AclApplyError, match="the cluster has no authorizer"):
        apply_acls(AdminClient(confluent_config(settings)), [more], dry_run=True)


async def test_a_collector_whose_user_may_write_to_no_topic_fails_its_liveness(
    acl_broker: tuple[str, SecureMaterial],
) -> None:
    """The collector run as the dashboard's user (or before `acls apply`): its idempotent
    producer is refused a producer id, a fatal error that confluent-kafka raises from
    poll. It ended the collector's poll thread, and /healthz said ok for good while every
    post was a 503; now the process fails its liveness, saying why."""
    bootstrap, material = acl_broker
    _topics_and_acls_applied(bootstrap, material)
    registry_runner, registry_url = await serve_app(
        create_registry_app(_as("registry", bootstrap, material))
    )
    runners = [registry_runner]
    try:
        operator = _as(None, bootstrap, material, schema_registry_url=registry_url)
        await asyncio.to_thread(register_topology_schemas, operator, SHIPPED_TOPOLOGY)
        runner, url = await serve_app(create_collector_app(
            _as("dashboard", bootstrap, material, schema_registry_url=registry_url)))  # fmt: skip
        runners.append(runner)
        status, answer = 0, {}
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 30
            while status != 503 and time.monotonic() < deadline:
                async with session.get(f"{url}/healthz") as response:
                    status, answer = response.status, await response.json()
                await asyncio.sleep(0.5)
        assert status == 503, answer
        assert answer["status"] == "stalled"
        assert "Cluster authorization failed" in answer["reason"], answer
    finally:
        for each in reversed(runners):
            await each.cleanup()


OTHER_TEAM = "team-b."
"""A second deployment's namespace on the same cluster, with its own principals."""


def _groups_granted(prefix: str, principal_prefix: str) -> list[str]:
    """A group name each GROUP entry of a deployment's plan covers (a prefixed entry: a name
    it matches, as a part names its fresh groups)."""
    from streamlearn.topology.acl_parts import PART_NAMES, shipped_parts
    from streamlearn.topology.acls import GROUP, PREFIXED, plan_acls, principals
    from streamlearn.topology.namespace import Namespace

    topology = load_topology(SHIPPED_TOPOLOGY)
    entries = plan_acls(
        shipped_parts(topology), topology, Namespace(prefix),
        principals(PART_NAMES, principal_prefix),
    )  # fmt: skip
    return sorted(
        {acl.name + ("x1" if acl.pattern_type == PREFIXED else "") for acl in entries
         if acl.resource_type == GROUP}
    )  # fmt: skip


def test_one_deployments_users_cannot_reach_another_deployments_groups(
    acl_broker: tuple[str, SecureMaterial],
) -> None:
    """Two deployments on one cluster, each in its namespace with its own users: no part of
    one may describe (so neither join, commit nor read the offsets of) a group of the other.
    The learner's topic reader, the workers' experiments readers and the dashboard's groups
    were named outside the namespace, so one team's learner held READ on the group the other
    team's learner uses."""
    from streamlearn.runtime.topic_reader import read_ranges
    from streamlearn.topology.acl_parts import PART_NAMES

    bootstrap, material = acl_broker
    _topics_and_acls_applied(bootstrap, material)
    env = {
        "STREAMLEARN_CONFIG_FILE": str(material.client_settings_path),
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": OTHER_TEAM,
    }
    other = CliRunner().invoke(
        cli, ["acls", "apply", "--principal-prefix", "User:team-b-"], env=env
    )
    assert other.exit_code == 0, other.output

    theirs = _groups_granted(OTHER_TEAM, "User:team-b-")
    reachable = {}
    for part in PART_NAMES:
        admin = AdminClient(confluent_config(_as(part, bootstrap, material)))
        for group, future in admin.describe_consumer_groups(theirs, request_timeout=15).items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                    continue
            reachable.setdefault(part, []).append(group)
    assert reachable == {}, f"parts of {PREFIX!r} reach groups of {OTHER_TEAM!r}: {reachable}"

    # The learner's own topic reader still reads its model.state under its own user.
    learner = _as("learner", bootstrap, material)
    producer = Producer(producer_config(_as("learner", bootstrap, material)))
    producer.produce(PREFIX + "model.state", b"x", key=b"namespaced-reader")
    assert producer.flush(20) == 0
    end = Consumer(confluent_config(learner, **{"group.id": PREFIX + "streamlearn-topic-reader"}))
    try:
        _, high = end.get_watermark_offsets(TopicPartition(PREFIX + "model.state", 0), timeout=15)
    finally:
        end.close()
    read = list(read_ranges(learner, PREFIX + "model.state", {0: (high - 1, high)}))
    assert [record.key for record in read] == [b"namespaced-reader"]


def test_apply_names_entries_of_its_principals_that_the_plan_no_longer_has(
    acl_broker: tuple[str, SecureMaterial],
) -> None:
    """`acls apply` adds and never deletes: an entry an older plan granted (the learner's
    READ on the group `streamlearn-topic-reader`, outside the namespace, before it moved
    into it) stayed on the cluster in silence, and with it the access it gave."""
    from confluent_kafka.admin import AclBindingFilter

    from streamlearn.topology.acl_admin import binding

    bootstrap, material = acl_broker
    _topics_and_acls_applied(bootstrap, material)
    operator = AdminClient(confluent_config(_as(None, bootstrap, material)))
    older = Acl("User:streamlearn-learner", "GROUP", "streamlearn-topic-reader", "LITERAL", "READ")
    apply_acls(operator, [older])
    try:
        applied = _cli(material.client_settings_path, bootstrap, "apply")
        assert applied.exit_code == 0, applied.output
        assert "1 ACL(s) of these principals are not in the plan" in applied.output
        stale = [line for line in applied.output.splitlines() if "streamlearn-topic-reader" in line]
        assert [line.split()[:3] for line in stale] == [
            ["User:streamlearn-learner", "GROUP", "streamlearn-topic-reader"]
        ], applied.output
    finally:
        made = binding(older)
        matching = AclBindingFilter(
            made.restype, made.name, made.resource_pattern_type, made.principal, made.host,
            made.operation, made.permission_type,
        )  # fmt: skip
        for future in operator.delete_acls([matching], request_timeout=15).values():
            future.result()
