"""The archive agent against the real broker and registry, on a local root and on a real
S3 API (moto's server on 127.0.0.1), killed with SIGKILL in the middle of an hour.

Acceptance: the files are plain Avro (fastavro) or Parquet (pyarrow); per topic and
partition the archived records are exactly the topic's records, none twice, none missing,
after a SIGKILL and a restart too; offsets are committed once the files are final.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streamlearn.archive import ArchiveAgent, ArchiveConfig, Limits, list_archive, read_archive
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import bucket_directory, overlaps, resume_points
from streamlearn.archive.topic_ids import MARKER_NAME
from streamlearn.kafka_clients import producer_config
from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from tests.support import committed_to_end, end_offsets

TOPIC = "telemetry.events"
TOPOLOGY = Path(__file__).resolve().parents[2] / "topology" / "topics.yaml"
GARBAGE = (b"not avro", b"\x00\x00\x00\x00", b'{"json": true}')
S3_KEY = {"AWS_ACCESS_KEY_ID": "archive-test", "AWS_SECRET_ACCESS_KEY": "archive-test-secret"}
BASE = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
"""The hour the tests' record times start at: recent, since the topic keeps them
(CreateTime) and the broker deletes records older than the topic's 7-day retention (fixed
dates of 2026-11-30 made the archive's tests fail from 2026-12-07 on, their records
deleted by the broker's retention check while the tests ran)."""


def _event(n: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "user_id": f"user-{n % 40}",
        "client_ts": at,
        "received_ts": at,
        "url": f"https://shop.example/p/{n}",
        "app_version": "web-1",
        "properties": {"n": str(n)},
    }


def _stamped_by_producer(settings: Settings, name: str) -> None:
    """The topic keeps the timestamps the producer gives (CreateTime): the topology has the
    broker stamp telemetry.events at append, and these tests cross hours in record time."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    entry = ConfigEntry(
        "message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET
    )
    resource = ConfigResource(ConfigResource.Type.TOPIC, name, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)
    # The brokers apply a topic's new config shortly after they acknowledge it.
    deadline = time.monotonic() + 30
    while True:
        [described] = admin.describe_configs(
            [ConfigResource(ConfigResource.Type.TOPIC, name)]
        ).values()
        if described.result(timeout=30)["message.timestamp.type"].value == "CreateTime":
            break
        assert time.monotonic() < deadline, "the topic kept the broker's timestamps"
        time.sleep(0.2)
    time.sleep(1.0)


def produce(settings: Settings, start: datetime, count: int, seed: int) -> None:
    """``count`` events, one every 10 s of record time from ``start`` (with a few late
    ones and a few undecodable values), keyed by user."""
    name = settings.topic_prefix + TOPIC
    _stamped_by_producer(settings, name)
    with RegistryClient(settings.schema_registry_url) as registry:
        serde = AvroSerde.for_topic(registry, name, "TelemetryEvent")
        rng = random.Random(seed)
        producer = Producer(producer_config(settings, **{"linger.ms": 5}))
        for n in range(count):
            at = start + timedelta(seconds=10 * n)
            if rng.random() < 0.03:
                at -= timedelta(minutes=75)  # late: an earlier hour
            event = _event(seed * 100_000 + n, at)
            value = serde.encode(event) if rng.random() > 0.01 else rng.choice(GARBAGE)
            producer.produce(
                name,
                key=event["user_id"].encode(),
                value=value,
                timestamp=int(at.timestamp() * 1000),
            )
            producer.poll(0)
        assert producer.flush(30) == 0


def topic_records(settings: Settings) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """Every record of the topic: partition → [(offset, key, value)]."""
    name = settings.topic_prefix + TOPIC
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"check-{uuid.uuid4().hex}"}
    )
    try:
        ends = end_offsets(consumer, name, range(6))
        consumer.assign([TopicPartition(name, p, 0) for p in ends if ends[p]])
        found: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {p: [] for p in ends}
        deadline = time.monotonic() + 30
        while sum(len(v) for v in found.values()) < sum(ends.values()):
            assert time.monotonic() < deadline, "could not read the topic back"
            for message in consumer.consume(1000, timeout=1):
                assert message.error() is None
                found[message.partition() or 0].append(
                    (message.offset() or 0, message.key(), message.value())
                )
        return found
    finally:
        consumer.close()


def assert_archive_is_the_topic(
    settings: Settings, root: str, storage_options: dict[str, Any] | None = None
) -> int:
    """Per partition: the archived offsets are exactly the topic's, each once, with the
    same keys, and values that decode to what was produced. Returns the record count."""
    name = settings.topic_prefix + TOPIC
    expected = topic_records(settings)
    archived: dict[int, list[Any]] = {p: [] for p in expected}
    for record in read_archive(root, name, storage_options=storage_options):
        archived[record.partition].append(record)
    files = list_archive(root, name, storage_options)
    assert overlaps(files) == []
    with RegistryClient(settings.schema_registry_url) as registry:
        serde = AvroSerde.for_topic(registry, name, "TelemetryEvent")
        for partition, records in expected.items():
            got = archived[partition]
            assert [r.offset for r in got] == [o for o, _, _ in records], f"partition {partition}"
            for record, (_, key, value) in zip(got, records, strict=True):
                assert record.key == key
                if value in GARBAGE:
                    assert (record.value, record.raw) == (None, value)
                    assert record.error in ("bad_magic_byte", "truncated_body", "unknown_schema_id")
                else:
                    assert record.value == serde.decode(value)
    return sum(len(v) for v in expected.values())


def archive_command(*args: str) -> list[str]:
    """``streamlearn archive ARGS`` once the command line has ``archive``; until then the
    module's own entry point (the same Typer app)."""
    from streamlearn.cli import app

    if any(group.name == "archive" for group in app.registered_groups):
        return [sys.executable, "-m", "streamlearn", "archive", *args]
    return [sys.executable, "-c", "from streamlearn.cli_archive import main; main()", *args]


@dataclass
class Archiver:
    """`archive run` as its own process."""

    settings: Settings
    args: list[str]
    env: dict[str, str]
    log: Path

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "STREAMLEARN_TOPIC_PREFIX": self.settings.topic_prefix,
            "STREAMLEARN_SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
            "STREAMLEARN_DATA_DIR": str(self.log.parent / "data"),
            # The killed worker stays in the group until its session times out: the
            # shortest allowed, so its successor gets the partitions within seconds.
            "STREAMLEARN_CONSUMER_SESSION_TIMEOUT_S": "6",
            **self.env,
        }
        with self.log.open("ab") as log:
            return subprocess.Popen(
                archive_command("run", "--topics", TOPIC, *self.args, *extra),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s}s; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _partials(folder: Path) -> list[Path]:
    return list(folder.rglob("*.inprogress")) if folder.exists() else []


def _count(root: str, settings: Settings, options: dict[str, Any] | None = None) -> int:
    """Records in final files, from their names (the topic has no offset gaps)."""
    if "://" not in root and not Path(root).is_dir():
        return 0  # a local root is made when its first record is read
    files = list_archive(root, settings.topic_prefix + TOPIC, options)
    return sum(f.last_offset - f.first_offset + 1 for f in files)


def kill_mid_hour_and_restart(
    settings: Settings,
    archiver: Archiver,
    root: str,
    partials: Path,
    options: dict[str, Any] | None = None,
) -> None:
    """Phase 1 (BASE + 0:30 → 1:20) archived by a process killed with files in progress,
    phase 2 (→ 2:10) by its successor, which closes what stays open when traffic stops."""
    start = BASE + timedelta(minutes=30)
    produce(settings, start, 300, seed=1)
    first = archiver.start("--idle-close-s", "600")
    try:
        wait_for(
            "files final and in progress",
            lambda: _count(root, settings, options) >= 150 and bool(_partials(partials)),
            45,
            archiver.log,
        )
    finally:
        first.kill()  # SIGKILL: no clean-up of any kind
        first.wait()
    assert _partials(partials), "the kill should leave in-progress files"
    produce(settings, start + timedelta(seconds=3000), 300, seed=2)
    port = free_port()
    second = archiver.start("--idle-close-s", "1", "--metrics-port", str(port))
    try:
        wait_for(
            "every record archived",
            lambda: _count(root, settings, options) >= 600 and not _partials(partials),
            45,
            archiver.log,
        )
        wait_for(
            "offsets committed",
            lambda: committed_to_end(
                settings, TOPIC, group=settings.topic_prefix + "streamlearn-archive"
            ),
            20,
            archiver.log,
        )
        status, body = _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, body
        assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        text = metrics.decode()
        assert 'streamlearn_archive_records_total{topic="telemetry.events"}' in text
        assert "streamlearn_archive_files_total" in text
    finally:
        assert stop(second) == 0, archiver.log.read_text()[-3000:]
    assert not _partials(partials)
    assert assert_archive_is_the_topic(settings, root, options) == 600


def test_sigkill_mid_hour_then_restart_local(system_settings: Settings, tmp_path: Path) -> None:
    root = tmp_path / "archive"
    archiver = Archiver(
        system_settings,
        ["--root", str(root), "--max-file-records", "17"],
        {},
        tmp_path / "archive.log",
    )
    kill_mid_hour_and_restart(system_settings, archiver, str(root), root / "_partial")
    # Plain Avro files: fastavro reads every one, with the writer schema inside.
    paths = sorted(root.rglob("*.avro"))
    assert paths
    # The hours of the two phases (BASE + 0:30 → 2:10).
    hours = {
        bucket_directory(int((BASE + timedelta(hours=h)).timestamp() * 1000)) for h in range(3)
    }
    for path in paths:
        assert any(f"/{hour}/" in str(path) for hour in hours), path
        with path.open("rb") as handle:
            reader = fastavro.reader(handle)
            rows = list(reader)
        assert rows
        assert reader.metadata["streamlearn.topic"] == system_settings.topic_prefix + TOPIC
        value = next(f for f in reader.writer_schema["fields"] if f["name"] == "value")
        if rows[0]["schema_id"] is not None:
            assert value["type"][1]["name"] == "io.streamlearn.TelemetryEvent"


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, as its own process, with one bucket."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while _get(f"{url}/")[0] == 0:
            assert server.poll() is None, "moto exited"
            assert time.monotonic() < deadline, "moto did not start"
            time.sleep(0.1)
        request = urllib.request.Request(f"{url}/archive-bucket", method="PUT")
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def test_sigkill_mid_hour_then_restart_s3_parquet(
    system_settings: Settings, tmp_path: Path, s3_endpoint: str
) -> None:
    root = f"s3://archive-bucket/{system_settings.topic_prefix.rstrip('.')}"
    staging = tmp_path / "staging"
    archiver = Archiver(
        system_settings,
        [
            "--root", root, "--format", "parquet", "--max-file-records", "23",
            "--staging-dir", str(staging), "--s3-endpoint-url", s3_endpoint,
        ],
        {**S3_KEY, "AWS_REGION": "us-east-1"},
        tmp_path / "archive.log",
    )  # fmt: skip
    options = {"endpoint_url": s3_endpoint, "key": S3_KEY["AWS_ACCESS_KEY_ID"],
               "secret": S3_KEY["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    kill_mid_hour_and_restart(system_settings, archiver, root, staging, options)
    # Plain Parquet objects: pyarrow reads each one straight from the bucket.
    import s3fs

    fs = s3fs.S3FileSystem(**options)
    keys = [k for k in fs.find(root) if k.endswith(".parquet")]
    assert keys
    total = 0
    for key in keys:
        with fs.open(key, "rb") as handle:
            table = pq.read_table(handle)
        total += table.num_rows
        assert table.schema.field("timestamp").type.tz == "UTC"
    assert total == 600
    assert "archive-test-secret" not in archiver.log.read_text()


def test_two_workers_share_partitions_and_hand_over(
    system_settings: Settings, tmp_path: Path
) -> None:
    """Two workers of one group: each partition's files come from one of them at a time;
    one leaves mid-stream and the other takes its partitions over from the files."""
    root = str(tmp_path / "archive")
    config = ArchiveConfig(
        root=root, topics=(TOPIC,), limits=Limits(max_records=11, idle_close_s=1.0)
    )
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    start = BASE + timedelta(minutes=50)
    produce(settings, start, 300, seed=3)
    agents = [ArchiveAgent(settings, config), ArchiveAgent(settings, config)]
    stops = [threading.Event(), threading.Event()]
    errors: list[BaseException] = []

    def run(agent: ArchiveAgent, stop_event: threading.Event) -> None:
        try:
            agent.run(stop_event)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=pair) for pair in zip(agents, stops, strict=True)]
    for thread in threads:
        thread.start()
    try:
        # Cooperative rebalancing moves partitions to the second worker in steps: a
        # partition revoked from one is briefly owned by neither, never by both.
        deadline = time.monotonic() + 30
        while True:
            owned = [set(a.archivers) for a in agents]
            assert not owned[0] & owned[1]
            if all(owned) and len(owned[0] | owned[1]) == 6:
                break
            assert time.monotonic() < deadline, f"both workers should own partitions: {owned}"
            assert not errors, errors
            time.sleep(0.1)
        wait_for("some files", lambda: _count(root, settings) >= 100, 30, tmp_path / "none")
        stops[0].set()  # one leaves: its partitions move to the other
        threads[0].join(timeout=30)
        produce(settings, start + timedelta(seconds=3000), 200, seed=4)
        wait_for(
            "every record archived",
            lambda: len(agents[1].archivers) == 6 and _count(root, settings) >= 500
            and not _partials(Path(root) / "_partial"),
            40,
            tmp_path / "none",
        )  # fmt: skip
    finally:
        for event in stops:
            event.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    assert assert_archive_is_the_topic(settings, root) == 500


def test_records_are_committed_only_after_their_file(
    system_settings: Settings, tmp_path: Path
) -> None:
    """Files still in progress are not committed; a graceful stop makes them final and
    commits them; a worker that takes the group over then has nothing left to write."""
    root = str(tmp_path / "archive")
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    produce(settings, BASE, 60, seed=5)
    group = settings.topic_prefix + "streamlearn-archive"
    long_idle = ArchiveConfig(root=root, topics=(TOPIC,), limits=Limits(idle_close_s=600))
    agent = ArchiveAgent(settings, long_idle)
    stop_event = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop_event,))
    thread.start()
    name = settings.topic_prefix + TOPIC

    def in_progress() -> int:
        return sum(a.open_records for a in list(agent.archivers.values()))

    try:
        wait_for(
            "every record read",
            lambda: in_progress() + _count(root, settings) == 60,
            30,
            tmp_path / "none",
        )
        assert in_progress() > 0
        # Committed: exactly up to the final files; nothing of the open ones.
        files = list_archive(root, name)
        ends = {f.partition: f.next_offset for f in files}
        consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
        try:
            committed = consumer.committed([TopicPartition(name, p) for p in range(6)], timeout=10)
        finally:
            consumer.close()
        assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == ends
        assert not committed_to_end(settings, TOPIC, group=group)
        final_before = _count(root, settings)
    finally:
        stop_event.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert not _partials(Path(root) / "_partial")
    assert agent.metrics.value(agent.metrics.abandoned, topic=TOPIC) == 0
    assert committed_to_end(settings, TOPIC, group=group)
    assert assert_archive_is_the_topic(settings, root) == 60
    records = agent.metrics.value(agent.metrics.records, topic=TOPIC)
    assert records == 60  # each record counted once, by the file's writer
    assert final_before < 60
    undecodable = sum(
        agent.metrics.value(agent.metrics.undecodable, topic=TOPIC, reason=reason)
        for reason in ("bad_magic_byte", "truncated_body", "unknown_schema_id", "undecodable")
    )
    assert undecodable == sum(1 for r in read_archive(root, name) if r.error)
    # The next worker resumes after the files: it writes nothing.
    assert _records_a_new_worker_archives(settings, long_idle, tmp_path) == 0
    assert assert_archive_is_the_topic(settings, root) == 60


def _records_a_new_worker_archives(settings: Settings, config: ArchiveConfig, tmp: Path) -> float:
    """A worker that joins the group, runs a second and stops: the records it archived."""
    agent = ArchiveAgent(settings, config)
    stop_event = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop_event,))
    thread.start()
    try:
        wait_for("the group joined", lambda: agent.started, 30, tmp / "none")
        time.sleep(1.0)
    finally:
        stop_event.set()
        thread.join(timeout=30)
    return agent.metrics.value(agent.metrics.records, topic=TOPIC)


def test_files_past_the_retention_are_deleted_but_each_partitions_newest(
    system_settings: Settings, tmp_path: Path
) -> None:
    """The archive kept every file for good (a probe's `up`: ~4.4 GB a day on its disk).
    With a retention, a worker deletes its partitions' files whose hour ended longer ago,
    and keeps each partition's newest, which says where the partition continues."""
    root = str(tmp_path / "archive")
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    produce(settings, BASE, 120, seed=7)
    name = settings.topic_prefix + TOPIC
    config = ArchiveConfig(
        root=root,
        topics=(TOPIC,),
        limits=Limits(max_records=5, idle_close_s=1),
        retention_hours=1,
        retention_every_s=0.5,
    )
    agent = ArchiveAgent(settings, config)
    stop_event = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop_event,))
    thread.start()
    ends = {p: records[-1][0] + 1 for p, records in topic_records(settings).items() if records}

    def only_the_newest_left() -> bool:
        files = list_archive(root, name)
        return sorted((f.partition, f.next_offset) for f in files) == sorted(ends.items())

    try:
        wait_for("only each partition's newest file left", only_the_newest_left, 60, tmp_path / "x")
    finally:
        stop_event.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    deleted = agent.metrics.value(agent.metrics.deleted, topic=TOPIC)
    written = sum(
        sample.value
        for metric in agent.metrics.files.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["topic"] == TOPIC
    )
    assert deleted == written - len(ends) > 0
    # The next worker continues after the newest files: it archives nothing again.
    assert _records_a_new_worker_archives(settings, config, tmp_path) == 0


def test_an_object_store_that_refuses_is_one_line_and_exit_1(
    system_settings: Settings, tmp_path: Path, s3_endpoint: str
) -> None:
    """No credentials, no such bucket, no server at the endpoint: one line naming the
    refusal, not a botocore traceback."""
    produce(system_settings, BASE + timedelta(hours=1), 20, seed=5)
    nowhere = {
        # Nothing for botocore's chain to find (no files, no instance metadata).
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "us-east-1",
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
        "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
        "STREAMLEARN_DATA_DIR": str(tmp_path / "data"),
        **nowhere,
    }
    down = f"http://127.0.0.1:{free_port()}"
    cases = [
        (["ls", "--root", "s3://archive-bucket/x", "--s3-endpoint-url", s3_endpoint], {},
         "S3: Unable to locate credentials"),
        (["ls", "--root", "s3://archive-bucket/x", "--s3-endpoint-url", down], S3_KEY,
         "S3: Could not connect to the endpoint URL"),
        (["run", "--topics", TOPIC, "--root", "s3://no-such-bucket/x", "--idle-close-s",
          "0.5", "--staging-dir", str(tmp_path / "staging"), "--s3-endpoint-url", s3_endpoint,
          "--group", "refused"], S3_KEY, "S3: no bucket no-such-bucket"),
        # Listed as an empty archive: "no archive files", exit 0, and replays from Kafka.
        (["ls", "--root", "s3://no-such-bucket/x", "--s3-endpoint-url", s3_endpoint], S3_KEY,
         "S3: no bucket no-such-bucket"),
        (["ls", "--root", str(tmp_path / "no-such-dir")], {},
         f"archive root {tmp_path / 'no-such-dir'}: no such directory"),
    ]  # fmt: skip
    for args, credentials, expected in cases:
        answer = subprocess.run(
            archive_command(*args), env={**env, **credentials}, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert answer.returncode == 1, (args, answer.stderr[-2000:])
        assert "Traceback" not in answer.stderr, (args, answer.stderr[-2000:])
        last = answer.stderr.strip().splitlines()[-1]
        assert last.startswith("streamlearn: error: "), (args, last)
        assert expected in last, (args, last)
        assert S3_KEY["AWS_SECRET_ACCESS_KEY"] not in answer.stderr


def test_start_at_latest_is_where_the_group_first_took_a_partition(
    system_settings: Settings, tmp_path: Path
) -> None:
    """`--start-at latest` means from when the group first took the partition: a worker
    killed before its first file of a partition was final, and its successor, archive
    every record produced since (the successor started at the log's end again, and the
    records of the killed worker's in-progress files were never archived)."""
    root = tmp_path / "archive"
    archiver = Archiver(
        system_settings, ["--root", str(root), "--start-at", "latest"], {}, tmp_path / "a.log"
    )
    name = system_settings.topic_prefix + TOPIC

    def took_all(count: int) -> Callable[[], bool]:
        return lambda: archiver.log.read_text().count(f"took {name}[") >= 6 * count

    first = archiver.start("--idle-close-s", "600")
    try:
        wait_for("the partitions taken", took_all(1), 45, archiver.log)
        produce(system_settings, BASE + timedelta(minutes=30), 120, seed=6)
        wait_for("files in progress", lambda: bool(_partials(root / "_partial")), 30, archiver.log)
        assert _count(str(root), system_settings) == 0  # nothing final yet
    finally:
        first.kill()  # SIGKILL: its in-progress files are abandoned
        first.wait()
    second = archiver.start("--idle-close-s", "1")
    try:
        wait_for("the partitions taken again", took_all(2), 45, archiver.log)
        produce(system_settings, BASE + timedelta(minutes=50), 60, seed=7)
        group = system_settings.topic_prefix + "streamlearn-archive"
        wait_for(
            "the topic read to its end",
            lambda: (
                committed_to_end(system_settings, TOPIC, group=group)
                and not _partials(root / "_partial")
            ),
            30,
            archiver.log,
        )
    finally:
        assert stop(second) == 0, archiver.log.read_text()[-3000:]
    assert assert_archive_is_the_topic(system_settings, str(root)) == 180


def test_a_worker_of_another_root_in_the_group_is_refused(
    system_settings: Settings, tmp_path: Path
) -> None:
    """Workers of one group share the partitions: a second worker archiving another root in
    the group (`archive run --root s3://...` beside `up`'s own archiver, both in the default
    group) would take some partitions from the first, and each root would get only part of
    the topics, without a word (seen: `up`'s local archive lost three topics whole to an S3
    archiver started beside it). It is refused before it joins; the first keeps them all."""
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    produce(settings, BASE, 30, seed=7)

    def worker(root: str) -> ArchiveAgent:
        return ArchiveAgent(settings, ArchiveConfig(root=str(tmp_path / root), topics=(TOPIC,)))

    first = worker("first")
    with _running(first) as first_errors:
        wait_for(
            "the first worker joined", lambda: len(first.archivers) == 6, 30, tmp_path / "none"
        )
        other = worker("other")
        with _running(other) as errors:
            # Joined, a rebalance would move partitions to it within seconds.
            wait_for(
                "the other root's worker refused or given partitions",
                lambda: bool(errors or other.archivers),
                30,
                tmp_path / "none",
            )
        assert [type(e) for e in errors] == [ArchiveError], errors
        assert "archiving another root" in str(errors[0])
        assert "--group" in str(errors[0])
        assert len(first.archivers) == 6
        # A second worker of the same root joins as before.
        same = worker("first")
        with _running(same) as same_errors:
            wait_for(
                "the same root's worker joined", lambda: bool(same.archivers), 30, tmp_path / "none"
            )
        assert same_errors == []
    assert first_errors == []


@contextmanager
def _running(agent: ArchiveAgent) -> Iterator[list[BaseException]]:
    """``agent`` run in a thread until the block ends; what it raised, in the list given."""
    errors: list[BaseException] = []
    stop_event = threading.Event()

    def run() -> None:
        try:
            agent.run(stop_event)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield errors
    finally:
        stop_event.set()
        thread.join(timeout=30)


def test_a_recreated_topic_behind_the_archives_files_is_refused(
    system_settings: Settings, admin: AdminClient, tmp_path: Path
) -> None:
    """A topic deleted and recreated (or the broker's data wiped) while the archive root
    stayed: the files say a partition goes on at, say, offset 9 while the new log holds
    0..2. The archiver sought to 9, librdkafka reset to the beginning, and the new records
    never reached a file (offsets below the files' next offset), with only librdkafka's
    reset warning. Now it refuses, naming the partition, both offsets and what to do."""
    settings, name, root, config = _topic_produced(system_settings, tmp_path, 60, seed=11)
    _archive_until_final(settings, config, 60, tmp_path)
    _recreate(admin, settings)
    # An archive written before the archive recorded topic ids: only the offsets tell.
    (root / name / MARKER_NAME).unlink()
    produce(settings, BASE + timedelta(hours=1), 6, seed=12)  # fewer than any partition had
    second = ArchiveAgent(settings, config)
    with _running(second) as errors:
        wait_for("the worker stopped", lambda: bool(errors), 45, tmp_path / "x")
    assert [type(e) for e in errors] == [ArchiveError], errors
    message = str(errors[0])
    assert f"{name}[" in message
    assert "recreated" in message
    assert "--root" in message
    assert _count(str(root), settings) == 60  # the old files are untouched
    assert not (root / name / MARKER_NAME).exists()  # the new topic's id was not recorded


def _topic_produced(
    system_settings: Settings, tmp_path: Path, records: int, *, seed: int
) -> tuple[Settings, str, Path, ArchiveConfig]:
    """Settings in ``tmp_path``, the topic's Kafka name, its archive root and an archive
    config closing files after 0.5 s idle; ``records`` produced to the topic."""
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    root = tmp_path / "archive"
    config = ArchiveConfig(root=str(root), topics=(TOPIC,), limits=Limits(idle_close_s=0.5))
    produce(settings, BASE, records, seed=seed)
    return settings, settings.topic_prefix + TOPIC, root, config


def _archive_until_final(
    settings: Settings, config: ArchiveConfig, records: int, tmp_path: Path
) -> None:
    """Run an archiver until ``records`` records are in final files, without an error."""
    first = ArchiveAgent(settings, config)
    with _running(first) as errors:
        wait_for(
            f"{records} records final",
            lambda: _count(config.root, settings) == records,
            45,
            tmp_path / "x",
        )
    assert errors == []


def _recreate(admin: AdminClient, settings: Settings) -> None:
    """Delete the archived topic and create it again (a new topic id, offsets from 0)."""
    name = settings.topic_prefix + TOPIC
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30
    while name in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "the topic was not deleted"
        time.sleep(0.2)
    apply_topology(admin, desired_topics(load_topology(TOPOLOGY), settings.topic_prefix))


def test_a_recreated_topic_grown_past_the_archives_files_is_refused_by_its_id(
    system_settings: Settings, admin: AdminClient, tmp_path: Path
) -> None:
    """A topic deleted and recreated, then grown past the old files' next offsets: offsets
    alone cannot tell the two logs apart, and the archiver wrote the new log's records
    after the old topic's files (a replay then read both as one log). The archive records
    the topic id its files belong to; the archiver and the replay's archive source refuse
    a live topic of another id, naming the topic, both ids and what to do."""
    from streamlearn.replay.exceptions import ReplayError
    from streamlearn.replay.sources import ArchiveSource

    settings, name, root, config = _topic_produced(system_settings, tmp_path, 30, seed=21)
    _archive_until_final(settings, config, 30, tmp_path)
    old_id = admin.describe_topics(TopicCollection([name]))[name].result(timeout=30).topic_id
    _recreate(admin, settings)
    new_id = admin.describe_topics(TopicCollection([name]))[name].result(timeout=30).topic_id
    produce(settings, BASE + timedelta(hours=1), 400, seed=22)  # past every old partition
    old_ends = {
        p: e.next_offset for (_, p), e in resume_points(list_archive(str(root), name)).items()
    }
    assert all(high > old_ends.get(p, 0) for p, (_, high) in end_offsets_of(settings).items())
    second = ArchiveAgent(settings, config)
    with _running(second) as errors:
        wait_for(
            "the worker stopped (or archived the new log)",
            lambda: bool(errors) or _count(str(root), settings) > 30,
            45,
            tmp_path / "x",
        )
    assert [type(e) for e in errors] == [ArchiveError], errors
    message = str(errors[0])
    assert name in message
    assert str(old_id) in message
    assert str(new_id) in message
    assert "recreated" in message
    assert "--root" in message
    assert _count(str(root), settings) == 30  # nothing of the new log after the old files
    with RegistryClient(settings.schema_registry_url) as registry:
        source = ArchiveSource(settings, registry, str(root))
        with pytest.raises(ReplayError) as refused:
            source.watermarks(name)
    assert str(old_id) in str(refused.value)
    assert str(new_id) in str(refused.value)


def end_offsets_of(settings: Settings) -> dict[int, tuple[int, int]]:
    from streamlearn.runtime.topic_reader import end_offsets as topic_end_offsets

    return topic_end_offsets(settings, settings.topic_prefix + TOPIC)


def test_a_topic_recreated_while_the_archiver_runs_stops_it(
    system_settings: Settings, admin: AdminClient, tmp_path: Path
) -> None:
    """The topic deleted and recreated under a running archiver: the consumer went on (or
    librdkafka reset it to the new log's start) and the new log's records went into files
    after the old topic's, under the old topic's id, until the next restart. The worker
    checks its topics' ids as it runs and stops before a file of the new log is final."""
    settings, name, root, config = _topic_produced(system_settings, tmp_path, 30, seed=31)
    agent = ArchiveAgent(settings, config)
    agent.topic_id_every_s = 0.5
    with _running(agent) as errors:
        wait_for("30 records final", lambda: _count(str(root), settings) == 30, 45, tmp_path / "x")
        agent.config = ArchiveConfig(
            root=str(root), topics=(TOPIC,), limits=Limits(idle_close_s=3600)
        )
        for archiver in agent.archivers.values():
            archiver.limits = agent.config.limits
        _recreate(admin, settings)
        produce(settings, BASE + timedelta(hours=1), 200, seed=32)
        wait_for(
            "the worker stopped (or archived the new log)",
            lambda: bool(errors) or _count(str(root), settings) > 30,
            45,
            tmp_path / "x",
        )
    assert [type(e) for e in errors] == [ArchiveError], errors
    assert name in str(errors[0])
    assert "recreated" in str(errors[0])
    assert _count(str(root), settings) == 30  # no file of the new log after the old ones
