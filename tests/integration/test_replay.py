"""`streamlearn replay` against the real broker, the registry and a real learner process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamlearn.archive import ArchiveAgent, ArchiveConfig, Limits
from streamlearn.kafka_clients import key_partition
from streamlearn.models import SPECS, model_input, safe_pickle
from streamlearn.models.online import OnlineLearner
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.shadow import read_manifest
from streamlearn.runtime.topic_reader import end_offsets
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving.experiment_topic import publish_experiment
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.settings import Settings
from tests import ingest_dataset
from tests.agent_workers import Workers, read_topic, running, worker_environment
from tests.cli_in_process import run_command
from tests.serving_support import start_worker
from tests.support import click_examples, committed_to_end, flush_events

PARTITIONS = 6  # topology/topics.yaml: training.examples
CTR_PARTITION = key_partition(b"ctr", PARTITIONS)


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def registry(settings: Settings) -> Any:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def _cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``streamlearn replay *args`` in this process (tests/cli_in_process.py says why).
    A `replay agents` that starts agents, and Ctrl-C, run the console script in a process
    of its own below."""
    return run_command(worker_environment(settings, **env), "replay", *args)


def _serde(settings: Settings, registry: RegistryClient, topic: str, schema: str) -> AvroSerde:
    return AvroSerde.for_topic(registry, settings.topic_prefix + topic, schema)


def _produce(
    settings: Settings, topic: str, records: list[tuple[bytes, bytes]], at: datetime | None = None
) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
    )
    timestamp = {} if at is None else {"timestamp": int(at.timestamp() * 1000)}
    for key, value in records:
        producer.produce(settings.topic_prefix + topic, key=key, value=value, **timestamp)
    assert producer.flush(30) == 0


def _snapshots(settings: Settings, registry: RegistryClient, name: str) -> list[dict[str, Any]]:
    serde = _serde(settings, registry, "model.state", "ModelSnapshot")
    messages = read_topic(settings, "model.state", lambda m: False, timeout_s=3)
    return [serde.decode(m.value()) for m in messages if m.key() == name.encode()]


def _river(examples: list[dict[str, Any]]) -> bytes:
    """The payload of River's model trained in-process on ``examples`` (ctr's spec)."""
    spec = SPECS["ctr"]
    model = spec.new_model(0)
    for example in examples:
        spec.learn(model, model_input(example["features"]), example["label"])
    return safe_pickle.dumps(model)


def test_live_versions_verify_and_doctored_ones_do_not(
    settings: Settings, registry: RegistryClient
) -> None:
    examples_serde = _serde(settings, registry, "training.examples", "TrainingExample")
    examples = click_examples(5000, seed=11)
    records = [(b"ctr", examples_serde.encode(e)) for e in examples]
    # Bytes that are not a TrainingExample, among ctr's: rejected by the runtime, skipped
    # by the replay alike.
    records.insert(2500, (b"ctr", b"\x00\x00\x00\x00\x07garbage"))
    learner = Workers(
        settings,
        only="learner",
        group="learner",
        STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="1500",
        STREAMLEARN_SNAPSHOT_EVERY_S="600",
    )
    with running(learner, 1):
        # In steps, so that the learner's batches end where its snapshots are due.
        for start, end in ((0, 1500), (1500, 3001), (3001, 4501), (4501, 5001)):
            _produce(settings, "training.examples", records[start:end])
            deadline = time.monotonic() + 120
            while not committed_to_end(settings, "training.examples", learner.group_id):
                assert time.monotonic() < deadline, "the learner did not consume every example"
                time.sleep(0.5)
        refused = _cli(settings, "model", "ctr", "--publish")
        assert refused.returncode == 1
        assert f"is being consumed by {learner.group_id}" in refused.stderr
    live = _snapshots(settings, registry, "ctr")
    assert [s["trained_examples"] for s in live] == [1500, 3000, 4500, 5000]

    verified = _cli(settings, "verify", "ctr", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "4 version(s) verified" in verified.stdout
    assert "ctr v2: identical; from v1" in verified.stdout

    # Two doctored versions: the same examples learned in another order (signed with the
    # real key: only a recomputation can tell), and the last version with a byte changed.
    newest = live[-1]
    doctored = OnlineLearner(SPECS["ctr"], signing_key="integration-test-signing-key")
    topic = settings.topic_prefix + "training.examples"
    for offset, example in enumerate(examples[:2500][::-1] + examples[2500:]):
        doctored.learn(example, topic, CTR_PARTITION, offset if offset < 2500 else offset + 1)
    doctored.version = 4
    reordered = doctored.snapshot(datetime.now(UTC))
    reordered["parent_version"] = None  # re-signed below with the field as published
    reordered = _resign(reordered, newest)
    tampered = {**newest, "version": 6, "parent_version": 5}
    tampered["payload"] = newest["payload"][:-1] + bytes([newest["payload"][-1] ^ 1])
    state = _serde(settings, registry, "model.state", "ModelSnapshot")
    _produce(
        settings,
        "model.state",
        [(b"ctr", state.encode(reordered)), (b"ctr", state.encode(tampered))],
    )

    differs = _cli(settings, "verify", "ctr", "--all")
    assert differs.returncode == 1
    assert "2 of 6 versions differ; first: v5: payload differs: sha256" in differs.stderr
    assert "ctr v6: DIFFERS" in differs.stdout
    assert "fails verification" in differs.stdout

    # Another run's key (found by a new user: the default data directory's) makes every
    # version a bad signature, as tampering does: the command says which key it used.
    other = _cli(settings, "verify", "ctr", STREAMLEARN_MODEL_SIGNING_KEY="another-runs-key")
    assert other.returncode == 1
    assert "bad_signature" in other.stdout
    assert "checked with the key from STREAMLEARN_MODEL_SIGNING_KEY" in other.stderr


def _resign(snapshot: dict[str, Any], like: dict[str, Any]) -> dict[str, Any]:
    """``snapshot`` with ``like``'s offsets and count, no parent, signed again."""
    from streamlearn.models.signature import sign

    changed = {
        **snapshot,
        "offsets": like["offsets"],
        "trained_examples": like["trained_examples"],
        "parent_version": None,
    }
    changed["signature"] = sign(changed, "integration-test-signing-key")
    return changed


def _archive(settings: Settings, topic: str, max_records: int) -> None:
    """Run the archive agent over ``topic`` until it has read every record, then stop it
    (a graceful stop makes its in-progress files final)."""
    archiver = ArchiveAgent(
        settings, ArchiveConfig(root=str(settings.data_dir / "archive"), topics=(topic,),
                                limits=Limits(max_records=max_records))
    )  # fmt: skip
    name = settings.topic_prefix + topic
    ends = {p: end for p, (_, end) in end_offsets(settings, name).items() if end}

    def read_all() -> bool:
        at = {key[1]: a.next_offset for key, a in list(archiver.archivers.items())}
        return all(at.get(p) == end for p, end in ends.items())

    stop = threading.Event()
    archiving = threading.Thread(target=archiver.run, args=(stop,))
    archiving.start()
    try:
        deadline = time.monotonic() + 60
        while not read_all():
            assert time.monotonic() < deadline, f"the archive did not read every {topic} record"
            time.sleep(0.2)
    finally:
        stop.set()
        archiving.join(timeout=60)
    assert not archiving.is_alive()


def test_replay_model_is_river_in_process_from_earliest_or_a_time_then_past_retention(
    settings: Settings, registry: RegistryClient, admin: AdminClient
) -> None:
    examples_serde = _serde(settings, registry, "training.examples", "TrainingExample")
    earlier = click_examples(3000, seed=12)
    later = click_examples(2000, seed=13, first=3000)
    other = click_examples(300, seed=14, model_name="conversion_value")
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    one_hour_ago = two_hours_ago + timedelta(hours=1)
    encode = examples_serde.encode
    _produce(settings, "training.examples", [(b"ctr", encode(e)) for e in earlier], two_hours_ago)
    _produce(settings, "training.examples", [(b"ctr", encode(e)) for e in later], one_hour_ago)
    _produce(settings, "training.examples", [(b"conversion_value", encode(e)) for e in other])

    whole = _cli(settings, "model", "ctr", "--shadow", "replayed")
    assert whole.returncode == 0, whole.stderr
    assert f"training.examples[{CTR_PARTITION}] offsets 0..5000 (5,000 records" in whole.stdout
    assert "published ctr@replayed v1 to model.state" in whole.stdout
    (replayed,) = _snapshots(settings, registry, "ctr@replayed")
    assert replayed["payload"] == _river(earlier + later), "byte-identical to River in-process"

    # Nothing to learn is refused rather than published as an untrained version.
    no_arm = _cli(settings, "model", "ctr@nosuch", "--shadow", "empty")
    assert no_arm.returncode == 1
    assert "learned no examples: none of the 5,000 records read is ctr@nosuch's" in no_arm.stderr
    empty = _cli(settings, "model", "ctr", "--from", "latest", "--shadow", "empty")
    assert empty.returncode == 1
    examples_topic = settings.topic_prefix + "training.examples"
    assert f"nothing to learn: {examples_topic}[{CTR_PARTITION}] offsets 5000..5000" in empty.stderr
    assert not _snapshots(settings, registry, "ctr@empty"), "an untrained model is not published"
    unpublished = _cli(settings, "model", "ctr@nosuch")
    assert unpublished.returncode == 0, unpublished.stderr
    assert "learned no examples" in unpublished.stderr
    nothing = _cli(settings, "model", "ctr", "--from", "latest")  # a warning, as documented
    assert nothing.returncode == 0, nothing.stderr
    assert "learned no examples: the range holds no records" in nothing.stderr

    since = (one_hour_ago - timedelta(minutes=1)).isoformat()
    plan = _cli(settings, "model", "ctr", "--from", since, "--shadow", "late", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "offsets 3000..5000 (2,000 records" in plan.stdout
    assert not _snapshots(settings, registry, "ctr@late"), "a dry run publishes nothing"
    late = _cli(settings, "model", "ctr", "--from", since, "--shadow", "late")
    assert late.returncode == 0, late.stderr
    (late_snapshot,) = _snapshots(settings, registry, "ctr@late")
    assert late_snapshot["payload"] == _river(later)
    assert '"start":3000' in late_snapshot["manifest"]

    verified = _cli(settings, "verify", "ctr@late")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ctr@late v1: identical; from scratch" in verified.stdout

    # The archive captures the examples (a graceful stop makes its last files final).
    _archive(settings, "training.examples", max_records=700)
    # Retention removes ctr's first thousand examples.
    topic = settings.topic_prefix + "training.examples"
    deleted = admin.delete_records([TopicPartition(topic, CTR_PARTITION, 1000)])
    for future in deleted.values():
        future.result(timeout=30)
    gone = _cli(settings, "model", "ctr", "--from", f"{CTR_PARTITION}:0", "--dry-run")
    assert gone.returncode == 1
    assert (
        f"past retention: {topic}[{CTR_PARTITION}] from offset 0, the log starts at 1000"
        in gone.stderr
    )
    assert "--source archive" in gone.stderr
    assert _cli(settings, "verify", "ctr@replayed").returncode == 1, "its inputs are gone"
    assert _cli(settings, "verify", "ctr@late").returncode == 0, "its inputs are still there"

    # The archive holds them: replay reads its files, then Kafka for what came after.
    newer = click_examples(400, seed=15, first=5000)
    _produce(settings, "training.examples", [(b"ctr", encode(e)) for e in newer])
    archived = _cli(settings, "model", "ctr", "--from", f"{CTR_PARTITION}:0",
                    "--source", "archive", "--shadow", "archived")  # fmt: skip
    assert archived.returncode == 0, archived.stderr
    assert (
        "offsets 0..5400 (5,400 records; the archive's files and the log hold 0..5400)"
        in archived.stdout
    )
    (from_files,) = _snapshots(settings, registry, "ctr@archived")
    assert from_files["payload"] == _river(earlier + later + newer)
    assert '"source":"archive"' in from_files["manifest"]
    verified = _cli(settings, "verify", "ctr@replayed", "--source", "archive")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ctr@replayed v1: identical" in verified.stdout


def test_reset_moves_a_stopped_group_and_refuses_a_running_one(
    settings: Settings, registry: RegistryClient
) -> None:
    examples_serde = _serde(settings, registry, "training.examples", "TrainingExample")
    records = [(b"ctr", examples_serde.encode(e)) for e in click_examples(50, seed=15)]
    _produce(settings, "training.examples", records)
    group = settings.topic_prefix + "backfill"
    topic = settings.topic_prefix + "training.examples"
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + 60
    while read < len(records) and time.monotonic() < deadline:
        read += len([m for m in consumer.consume(100, timeout=0.5) if m.error() is None])
    consumer.commit(asynchronous=False)
    try:
        refused = _cli(settings, "reset", "--group", "backfill", "--to", "earliest")
        assert refused.returncode == 1
        assert f"consumer group {group} has 1 active member(s)" in refused.stderr
    finally:
        consumer.close()

    plan = _cli(settings, "reset", "--group", "backfill", "--to", "earliest", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"{group} {topic}[{CTR_PARTITION}]: 50 -> 0" in plan.stdout
    moved = _cli(settings, "reset", "--group", "backfill", "--to", "earliest")
    assert moved.returncode == 0, moved.stderr
    check = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    try:
        (committed,) = check.committed([TopicPartition(topic, CTR_PARTITION)], timeout=30)
    finally:
        check.close()
    assert committed.offset == 0

    # Offsets move the partitions they name, and no other: the rest were sent to the
    # earliest offset (every other partition re-read from the start).
    named = _cli(settings, "reset", "--group", "backfill", "--to", f"{CTR_PARTITION}:10")
    assert named.returncode == 0, named.stderr
    assert named.stdout.splitlines() == [
        f"{group} {topic}[{CTR_PARTITION}]: 0 -> 10",
        f"moved 1 partition offsets of {group}",
    ]

    # Found by a new user: a misspelt group was "a group with no committed offsets: name
    # topics with --topic", and with --topic its offsets were committed under the typo.
    for args in ([], ["--topic", "training.examples"]):
        typo = _cli(settings, "reset", "--group", "backfil", "--to", "earliest", *args)
        assert typo.returncode == 1
        assert f"no consumer group '{settings.topic_prefix}backfil' on this cluster" in (
            typo.stderr
        )
        assert group in typo.stderr  # the groups it has
    check = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                      "group.id": settings.topic_prefix + "backfil"})  # fmt: skip
    try:
        (committed,) = check.committed([TopicPartition(topic, CTR_PARTITION)], timeout=30)
    finally:
        check.close()
    assert committed.offset < 0  # nothing committed under the typo

    # Found by a new user: with the log starting later (retention), `--to P:O` before it
    # was planned and committed without a word; what the group then reads depends on its
    # auto.offset.reset. It is refused as a replay range past retention is.
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    gone = admin.delete_records([TopicPartition(topic, CTR_PARTITION, 20)])
    for future in gone.values():
        future.result(timeout=30)
    past = _cli(settings, "reset", "--group", "backfill", "--to", f"{CTR_PARTITION}:5")
    assert past.returncode == 1
    assert "from offset 5, the log starts at 20" in past.stderr, past.stderr


async def test_a_shadow_replay_is_served_through_an_experiment_arm(
    settings: Settings, registry: RegistryClient
) -> None:
    examples_serde = _serde(settings, registry, "training.examples", "TrainingExample")
    examples = click_examples(800, seed=16)
    records = [(b"ctr", examples_serde.encode(e)) for e in examples]
    await asyncio.to_thread(_produce, settings, "training.examples", records)
    replayed = await asyncio.to_thread(_cli, settings, "model", "ctr", "--shadow", "replayed")
    assert replayed.returncode == 0, replayed.stderr
    experiment = Experiment("replay-check", "s", (Arm("replayed", "ctr@replayed", 1.0),))
    await asyncio.to_thread(publish_experiment, settings, registry, experiment)
    worker = await start_worker(settings.model_copy(update={"models": ["ctr"]}), registry)
    try:
        # The model and the experiment come from two topics, read in either order: both.
        await worker.wait(
            lambda: (
                worker.serving.store.get("ctr@replayed") is not None
                and worker.serving.book.covering("ctr") is not None
            )
        )
        instance = {"user_id": "u-1", "features": examples[0]["features"]}
        status, body = await worker.predict({"instances": [instance]})
    finally:
        await worker.close()
    assert status == 200, body
    (prediction,) = body["predictions"]
    assert (prediction["arm"], prediction["model_version"]) == ("replayed", 1)
    spec = SPECS["ctr"]
    river = safe_pickle.loads(_river(examples))
    expected = spec.predict(river, model_input(examples[0]["features"]))
    assert prediction["score"] == pytest.approx(spec.rules.clamp(expected))


def _topics_under(admin: AdminClient, prefix: str) -> set[str]:
    return {name for name in admin.list_topics(timeout=30).topics if name.startswith(prefix)}


def test_agents_replayed_into_a_shadow_namespace_differ_only_by_a_changed_bot_rule(
    settings: Settings, registry: RegistryClient, admin: AdminClient
) -> None:
    settings = ingest_dataset.settings_for(settings)
    events = _serde(settings, registry, "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=41, humans=30)
    template = next(iter(data.clean_events.values()))
    later = template["client_ts"] + timedelta(days=1)
    flush = [(e["user_id"].encode(), events.encode(e)) for e in flush_events(template, later)]
    live = Workers(settings, only="preprocess,sessionise")
    with running(live, 1):
        _produce(settings, "telemetry.events", [r for r in data.records + flush if r[1]])
        deadline = time.monotonic() + 120
        while not all(
            committed_to_end(settings, topic) for topic in ("telemetry.events", "events.clean")
        ):
            assert time.monotonic() < deadline, "the live agents did not consume their input"
            time.sleep(0.5)

    def replay(into: str, *more: str, **env: str) -> tuple[str, str]:
        environment = worker_environment(settings, **env)
        args = ["--only", "preprocess,sessionise", "--into", settings.topic_prefix + into, *more]
        run = subprocess.run(
            [sys.executable, "-m", "streamlearn", "replay", "agents", *args],
            env=environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        diff = run_command(environment, "replay", "diff", "--into", settings.topic_prefix + into)
        return str(diff.returncode), diff.stdout + diff.stderr

    code, same = replay("same.")
    print(same)
    assert code == "0", same
    assert "no differences" in same
    assert "events.clean: " in same
    assert "events.sessions: " in same

    # From the middle of each partition, with the same settings: live had read the records
    # before the range and the shadow had not. Sessions whose earlier events live had read
    # no longer come out as differences (13 did, before the diff knew where the range
    # starts); the duplicates' rule is the unit tests'.
    middle = ",".join(
        f"{p}:{end // 2}"
        for p, (_, end) in end_offsets(settings, settings.topic_prefix + "telemetry.events").items()
    )
    code, halfway = replay("half.", "--from", middle)
    print(halfway)
    assert code == "0", halfway
    assert "no differences" in halfway
    assert "left out near the range's start (offsets " in halfway

    def refused(into: str, *more: str) -> str:
        args = ["--only", "preprocess", "--into", settings.topic_prefix + into, *more]
        run = _cli(settings, "agents", *args)
        assert run.returncode == 1, run.stdout + run.stderr
        return run.stderr

    # A namespace that holds a replay is not replayed into again (its manifest was
    # overwritten, its group shared); nor is an empty range (it created the namespace, then
    # stopped with "exit code -15").
    again = refused("same.")
    assert f"{settings.topic_prefix}same. already holds a replay (of preprocess, sessionise)" in (
        again
    )
    assert read_manifest(settings, settings.topic_prefix + "same.")["agents"] == [
        "preprocess", "sessionise"
    ]  # fmt: skip
    nothing = refused("empty.", "--from", "latest")
    assert "nothing to replay: " in nothing
    assert not _topics_under(admin, settings.topic_prefix + "empty."), "nothing was created"

    # At most 3 events per user a minute: people who browse faster are now bots. The input
    # comes from the archive's files this time: the same records, the same differences.
    _archive(settings, "telemetry.events", max_records=100)
    code, strict = replay("strict.", "--source", "archive", STREAMLEARN_BOT_MAX_EVENTS_PER_USER="3")
    print(strict)
    assert code == "1", strict
    assert "filtered in shadow: bot rule user_rate 2" in strict
    assert "events.sessions:" in strict
    assert "differences in events.clean" in strict
    manifest = read_manifest(settings, settings.topic_prefix + "strict.")
    assert manifest["source"] == "archive"

    # Dropping a shadow namespace deletes it and nothing else.
    same, strict_prefix = settings.topic_prefix + "same.", settings.topic_prefix + "strict."
    held = _topics_under(admin, same)
    assert f"{same}events.sessions" in held
    assert f"{same}streamlearn-replay-sessionise-sessions-changelog" in held
    planned = _cli(settings, "drop", "--into", same, "--dry-run")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert f"delete consumer group {same}streamlearn-replay" in planned.stdout
    assert f"delete topic {same}events.sessions" in planned.stdout
    assert _topics_under(admin, same) == held, "a dry run deletes nothing"
    live = _topics_under(admin, settings.topic_prefix) - held - _topics_under(admin, strict_prefix)
    dropped = _cli(settings, "drop", "--into", same)
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert f"dropped {same!r}: {len(held)} topic(s), 1 consumer group(s), 2 file(s)" in (
        dropped.stdout
    )
    deadline = time.monotonic() + 30  # deleted once the controller has committed it
    while _topics_under(admin, same):
        assert time.monotonic() < deadline, _topics_under(admin, same)
        time.sleep(0.2)
    assert _topics_under(admin, strict_prefix), "another shadow namespace stays"
    assert live <= _topics_under(admin, settings.topic_prefix), "every live topic stays"
    with pytest.raises(ReplayError, match="no replay into"):
        read_manifest(settings, same)
    again = _cli(settings, "drop", "--into", same)
    assert again.returncode == 1
    assert "nothing of namespace" in again.stderr


def test_a_shadow_copy_keeps_the_live_records_timestamps(
    settings: Settings, registry: RegistryClient
) -> None:
    """The broker stamps telemetry.events and telemetry.feedback at append (LogAppendTime,
    which preprocess and label-join compare received_ts with). Created from the topology,
    the shadow topics did too, so every copied record got the time of the copy: a replay
    a day later judged its events against another clock than live did."""
    from streamlearn.replay.positions import parse_position
    from streamlearn.replay.shadow import copy_inputs, plan_shadow

    events = _serde(settings, registry, "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=43, humans=3)
    _produce(settings, "telemetry.events", [r for r in data.records[:20] if r[1]])
    feedback = _serde(settings, registry, "telemetry.feedback", "Feedback")
    now = datetime.now(UTC)
    click = {"request_id": "r-1", "event_id": "5d0b8a34-1f2e-4c3d-9a8b-7c6d5e4f3a21",
             "kind": "click", "value": None, "user_id": "u-1", "client_ts": now,
             "received_ts": now, "app_version": "1", "properties": {}}  # fmt: skip
    _produce(settings, "telemetry.feedback", [(b"r-1", feedback.encode(click))])
    live = {
        topic: {(m.partition(), m.offset()): m.timestamp() for m in read_topic(
            settings, topic, lambda m: False, timeout_s=3)}
        for topic in ("telemetry.events", "telemetry.feedback")
    }  # fmt: skip
    assert all(kind == 2 for stamped in live.values() for kind, _ in stamped.values()), (
        "the live topics are stamped by the broker"
    )
    time.sleep(1.5)  # the copy comes later: another broker time
    shadow = settings.topic_prefix + "copy."
    plan = plan_shadow(settings, ["preprocess", "label-join"], shadow,
                       parse_position("earliest"), parse_position("latest"))  # fmt: skip
    copy_inputs(settings, plan)
    # As a replay interrupted after its copy leaves it (no manifest): a dry run said yes to
    # it, then the run refused it (found by a new user); both refuse it now.
    for dry_run in (["--dry-run"], []):
        again = _cli(settings, "agents", "--only", "preprocess", "--into", shadow, *dry_run)
        assert again.returncode == 1, again.stdout
        assert "already holds records" in again.stderr
        assert f"replay drop --into {shadow}" in again.stderr
    for topic in ("telemetry.events", "telemetry.feedback"):
        copied = {
            (m.partition(), m.offset()): m.timestamp()
            for m in read_topic(settings.model_copy(update={"topic_prefix": shadow}), topic,
                                lambda m: False, timeout_s=3)
        }  # fmt: skip
        assert {k: ts for k, (_, ts) in copied.items()} == {
            k: ts for k, (_, ts) in live[topic].items()
        }, topic


@pytest.mark.parametrize("to", ["group", "command"])
def test_ctrl_c_stops_a_shadow_replay_while_its_agents_run(
    settings: Settings, registry: RegistryClient, to: str
) -> None:
    """Found by a new user: SIGINT during the worker phase of `replay agents` was ignored;
    the replay ran to its end and exited 0. Ctrl-C reaches the terminal's whole process
    group (the command and the shadow worker it started); `kill -INT` the command only."""
    from streamlearn.replay.shadow import manifest_path

    events = _serde(settings, registry, "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=44, humans=3)
    _produce(settings, "telemetry.events", [r for r in data.records[:30] if r[1]])
    into = settings.topic_prefix + "interrupted."
    with subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "replay", "agents",
         "--only", "preprocess", "--into", into],
        env=worker_environment(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own group: the test's Ctrl-C
        # As from a terminal: a suite started as a background job ignores SIGINT, and its
        # children would inherit that (then nothing here could be interrupted).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as replay:  # fmt: skip
        assert replay.stdout is not None
        assert replay.stderr is not None
        try:
            for line in replay.stdout:
                if line.startswith("running preprocess"):
                    break
            else:
                pytest.fail(f"no worker phase: {replay.stderr.read()}")
            time.sleep(1.0)  # the shadow worker is starting or consuming
            if to == "group":
                os.killpg(replay.pid, signal.SIGINT)
            else:
                replay.send_signal(signal.SIGINT)
            code = replay.wait(timeout=60)
        finally:
            if replay.poll() is None:
                os.killpg(replay.pid, signal.SIGKILL)
        stderr = replay.stderr.read()
    assert code == 130, stderr
    assert "interrupted: the shadow namespace" in stderr
    assert not manifest_path(settings, into).exists(), "an interrupted replay is not done"
    # As the message says: no manifest marks it as a replay's, so drop needs --force.
    assert f"`streamlearn replay drop --into {into} --force`" in stderr
    dropped = _cli(settings, "drop", "--into", into, "--force")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr


def test_a_warm_started_learner_publishes_versions_replay_verify_proves(
    settings: Settings, registry: RegistryClient
) -> None:
    """A warm start as docs/learning.md gives it: a baseline made with `replay model ctr
    --shadow history`, a learner told to start from it, and `replay verify` proving every
    version it published, the first from the baseline (it said DIFFERS, exit 1)."""
    serde = _serde(settings, registry, "training.examples", "TrainingExample")
    records = [(b"ctr", serde.encode(e)) for e in click_examples(3000, seed=3)]
    _produce(settings, "training.examples", records[:1500])
    made = _cli(settings, "model", "ctr", "--to", f"{CTR_PARTITION}:1200", "--shadow", "history")
    assert made.returncode == 0, made.stdout + made.stderr
    (baseline,) = _snapshots(settings, registry, "ctr@history")
    assert baseline["trained_examples"] == 1200

    learner = Workers(
        settings,
        only="learner",
        group="learner",
        STREAMLEARN_MODEL_WARM_START=json.dumps({"ctr": "ctr@history"}),
        STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="600",
        STREAMLEARN_SNAPSHOT_EVERY_S="600",
    )
    with running(learner, 1):
        _produce(settings, "training.examples", records[1500:])
        deadline = time.monotonic() + 120
        while not committed_to_end(settings, "training.examples", learner.group_id):
            assert time.monotonic() < deadline, "the learner did not consume every example"
            time.sleep(0.5)
    live = _snapshots(settings, registry, "ctr")
    assert live[0]["version"] == 1
    assert json.loads(live[0]["manifest"])["warm_start"] == {
        "model_name": "ctr@history",
        "version": 1,
    }
    verified = _cli(settings, "verify", "ctr", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ctr v1: identical; from ctr@history v1" in verified.stdout
    assert f"{len(live)} version(s) verified" in verified.stdout


def test_a_shadow_trained_with_settings_its_workers_refuse_is_not_published(
    settings: Settings, registry: RegistryClient
) -> None:
    """The README's `replay model ctr --shadow replayed`, run without the horizon `up
    --simulate` gives its learner (20 s), published a snapshot whose spec text every worker
    refuses (unknown_spec), raising the alert again on every worker start for as long as
    model.state keeps it. The live model's spec text says which settings the workers run."""
    examples_serde = _serde(settings, registry, "training.examples", "TrainingExample")
    encode = examples_serde.encode
    _produce(settings, "training.examples",
             [(b"ctr", encode(e)) for e in click_examples(300, seed=21)])  # fmt: skip

    def replay(horizon: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _cli(settings, "model", "ctr", *args, STREAMLEARN_LABEL_HORIZON_S=horizon)

    live = replay("20", "--publish")  # the learner's version, with up --simulate's horizon
    assert live.returncode == 0, live.stderr
    refused = replay("1800", "--shadow", "replayed")
    assert refused.returncode == 1
    assert "STREAMLEARN_LABEL_HORIZON_S=20" in refused.stderr, refused.stderr
    assert "unknown_spec" in refused.stderr
    assert not _snapshots(settings, registry, "ctr@replayed")
    served = replay("20", "--shadow", "replayed")
    assert served.returncode == 0, served.stderr
    assert len(_snapshots(settings, registry, "ctr@replayed")) == 1
    forced = replay("1800", "--shadow", "other", "--force")
    assert forced.returncode == 0, forced.stderr
    # Found by a new user: with another signing key (no live version verifies with it) the
    # spec check was skipped, and a model no worker could verify, of the wrong horizon
    # too, was published; `--publish --dry-run` planned it as the live model's next version.
    other_key = "another-key-0123456789"
    for args in (("--shadow", "otherkey"), ("--publish", "--dry-run")):
        wrong = _cli(settings, "model", "ctr", *args, STREAMLEARN_LABEL_HORIZON_S="1800",
                     STREAMLEARN_MODEL_SIGNING_KEY=other_key)  # fmt: skip
        assert wrong.returncode == 1, wrong.stdout
        assert "fails verification with this command's signing key" in wrong.stderr
        assert "bad_signature" in wrong.stderr
        assert other_key not in wrong.stderr + wrong.stdout
    assert not _snapshots(settings, registry, "ctr@otherkey")
