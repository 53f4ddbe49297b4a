"""The archive's topic selection, options and command line, without a broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException, TopicPartition
from typer.testing import CliRunner

from streamlearn.archive import ArchiveAgent, ArchiveConfig, ArchiveError
from streamlearn.archive.layout import ArchiveFile
from streamlearn.archive.storage import ArchiveStore, describe_root
from streamlearn.archive.topics import DEFAULT_TOPICS, select_topics
from streamlearn.cli_archive import archive_app, storage_options
from streamlearn.exceptions import StreamlearnError
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue


@pytest.fixture
def catalogue() -> TopicCatalogue:
    return TopicCatalogue.from_settings(Settings(topic_prefix="ns."))


def test_default_topics(catalogue: TopicCatalogue) -> None:
    chosen = select_topics(DEFAULT_TOPICS, catalogue)
    assert [t.logical for t in chosen] == [
        "telemetry.events",
        "telemetry.predictions",
        "telemetry.feedback",
        "events.clean",
        "events.sessions",
        "training.examples",
    ]
    assert chosen[0].name == "ns.telemetry.events"


def test_patterns_and_duplicates(catalogue: TopicCatalogue) -> None:
    chosen = select_topics(["model.*", " events.clean ", "events.c*"], catalogue)
    assert [t.logical for t in chosen] == ["events.clean", "model.state", "model.metrics"]


@pytest.mark.parametrize(("patterns", "message"), [
    (["events.cleen"], "topic 'events.cleen' matches no declared topic"),
    (["nothing.*"], "pattern 'nothing.*' matches no declared topic"),
    ([""], "no topics"),
])  # fmt: skip
def test_typos_are_errors(catalogue: TopicCatalogue, patterns: list[str], message: str) -> None:
    with pytest.raises(ArchiveError, match=message.replace("*", r"\*").replace(".", r"\.")):
        select_topics(patterns, catalogue)


def test_credentials_are_never_shown() -> None:
    assert describe_root("s3://AKIA:secret@bucket/prefix") == "s3://bucket/prefix"
    assert describe_root("/var/archive") == "/var/archive"
    config = ArchiveConfig(
        root="s3://AKIA:secret@bucket/p",
        storage_options={"key": "AKIA", "secret": "hunter2", "endpoint_url": "http://x"},
    )
    text = repr(config)
    assert "hunter2" not in text
    assert "AKIA" not in text
    assert "s3://bucket/p" in text


def test_s3_options_only_for_s3_roots() -> None:
    assert storage_options("/tmp/a", "http://127.0.0.1:9000", "eu-west-1") == {}
    assert storage_options("s3://b/p", "http://127.0.0.1:9000", "eu-west-1") == {
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert storage_options("s3://b/p", None, None) == {}


def test_object_storage_needs_a_staging_directory() -> None:
    store = ArchiveStore("memory://somewhere")
    with pytest.raises(ArchiveError, match="staging"):
        store.partial_path("t", 0, 0, "avro")


def test_consumer_commits_only_by_hand(tmp_path: Path) -> None:
    settings = Settings(topic_prefix="ns.", data_dir=tmp_path)
    agent = ArchiveAgent(
        settings, ArchiveConfig(root=str(tmp_path / "a")), registry=InMemoryRegistry()
    )
    config = agent.consumer_config()
    assert config["group.id"] == "ns.streamlearn-archive"
    assert config["enable.auto.commit"] is False
    assert config["enable.auto.offset.store"] is False
    assert config["partition.assignment.strategy"] == "cooperative-sticky"
    assert config["isolation.level"] == "read_committed"
    assert sorted(agent.topics) == sorted("ns." + t for t in agent.topics.values())


def _two_adjacent_files(root: Path) -> int:
    """Offsets 0-9 and 10-19 of telemetry.events[0] in one hour under ``root``; the hour."""
    bucket = 1_764_504_000_000 - 1_764_504_000_000 % 3_600_000
    for first, last in ((0, 9), (10, 19)):
        file = ArchiveFile("telemetry.events", 0, first, last, bucket, "avro")
        (root / file.path).parent.mkdir(parents=True, exist_ok=True)
        (root / file.path).write_bytes(b"x" * 5)
    return bucket


def test_archive_ls_lists_ranges_and_flags_overlaps(tmp_path: Path) -> None:
    bucket = _two_adjacent_files(tmp_path)
    result = CliRunner().invoke(archive_app, ["ls", "--root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["telemetry.events", "0", "0-9"],
        ["telemetry.events", "0", "10-19"],
    ]
    overlap = ArchiveFile("telemetry.events", 0, 5, 12, bucket, "avro")
    (tmp_path / overlap.path).write_bytes(b"x")
    result = CliRunner().invoke(
        archive_app, ["ls", "--root", str(tmp_path), "--topic", "telemetry.events"]
    )
    assert result.exit_code == 1
    assert "overlap" in result.output


def test_a_topic_named_twice_is_listed_and_expired_once(tmp_path: Path) -> None:
    """`--topic T --topic T` listed each file twice and reported it as overlapping itself
    (exit 1: an archive written exactly once said to be corrupt); expire counted twice."""
    _two_adjacent_files(tmp_path)
    twice = ["--root", str(tmp_path), "--topic", "telemetry.events", "--topic", "telemetry.events"]
    listed = CliRunner().invoke(archive_app, ["ls", *twice])
    assert listed.exit_code == 0, listed.output
    assert len(listed.stdout.splitlines()) == 2
    expired = CliRunner().invoke(archive_app, ["expire", "--older-than-hours", "1", *twice])
    assert expired.exit_code == 0, expired.output
    assert expired.stdout.splitlines()[-1] == "1 file(s), 5 bytes, deleted"


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_an_unknown_compression_is_refused_before_anything_runs(fmt: str, tmp_path: Path) -> None:
    refused = rf"--compression lz99: not a codec of {fmt} files; one of: "
    with pytest.raises(ArchiveError, match=refused):
        ArchiveConfig(root=str(tmp_path), format=fmt, compression="lz99")  # type: ignore[arg-type]
    result = CliRunner().invoke(
        archive_app,
        ["run", "--root", str(tmp_path), "--format", fmt, "--compression", "lz99",
         "--bootstrap-servers", "127.0.0.1:1"],
    )  # fmt: skip
    # The command line prints an ArchiveError as one line (cli_errors), before consuming.
    assert isinstance(result.exception, ArchiveError), result.output
    assert "--compression lz99: not a" in str(result.exception)


@pytest.mark.parametrize(
    ("fmt", "codec"),
    [("avro", "deflate"), ("avro", "null"), ("parquet", "zstd"), ("parquet", "none")],
)
def test_known_compressions_are_taken(fmt: str, codec: str, tmp_path: Path) -> None:
    config = ArchiveConfig(root=str(tmp_path), format=fmt, compression=codec)  # type: ignore[arg-type]
    assert config.compression == codec


def test_archive_ls_refuses_a_root_that_is_a_file_and_a_topic_the_topology_lacks(
    tmp_path: Path,
) -> None:
    """Found by a new user: both exited 0 with "no archive files"."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    result = CliRunner().invoke(archive_app, ["ls", "--root", str(a_file)])
    assert isinstance(result.exception, ArchiveError)
    assert f"archive root {a_file}: a file, not a directory" in str(result.exception)
    result = CliRunner().invoke(archive_app, ["ls", "--root", str(tmp_path), "--topic", "nosuch"])
    assert isinstance(result.exception, StreamlearnError)  # one line: streamlearn.cli
    assert "topic 'nosuch' is not declared in the topology (declared: " in str(result.exception)
    empty = CliRunner().invoke(
        archive_app, ["ls", "--root", str(tmp_path), "--topic", "telemetry.events"]
    )
    assert empty.exit_code == 0, "a topic with nothing archived yet is not an error"
    assert "no archive files" in empty.output


def test_an_archive_root_of_another_scheme_or_an_endpoint_that_is_no_url_is_refused(
    tmp_path: Path,
) -> None:
    """Found by a new user: `archive ls --root ftp://x` tried to resolve host x (a
    socket.gaierror traceback), `--s3-endpoint-url notaurl` was a ValueError traceback."""
    with pytest.raises(ArchiveError, match=r"archive root ftp://x: a local directory or s3://"):
        ArchiveStore("ftp://x")
    with pytest.raises(ArchiveError, match="--s3-endpoint-url: 'notaurl' is not an http"):
        storage_options("s3://bucket/archive", "notaurl", None)
    # memory:// (the tests' file system) was taken by `archive run`, then a traceback.
    with pytest.raises(ArchiveError, match=r"archive root memory://x: a local directory or s3://"):
        storage_options("memory://x", None, None)


def test_archivers_of_other_roots_or_groups_stage_their_files_apart(tmp_path: Path) -> None:
    """Found by a new user: two S3 archivers on one machine (other buckets, other groups)
    shared `$STREAMLEARN_DATA_DIR/archive-staging`; each deleted the other's in-progress
    files as stale when it took a partition, and the other stopped on the missing file,
    both in turn under a supervisor."""
    from streamlearn.archive.config import default_staging_dir

    settings = Settings(data_dir=tmp_path)
    one = default_staging_dir(settings, "s3://arch/sl", "ua-s3p")
    assert one.parent == tmp_path / "archive-staging"
    assert one == default_staging_dir(settings, "s3://arch/sl", "ua-s3p")  # a restart's
    assert one != default_staging_dir(settings, "s3://bkt2/y", "ua-s3p")
    assert one != default_staging_dir(settings, "s3://arch/sl", "ua-m2b")
    secret = default_staging_dir(settings, "s3://AKIAUSER:SUPERSECRET2@arch/sl", "g")
    assert "SUPERSECRET2" not in str(secret)
    assert "AKIAUSER" not in str(secret)


class _GroupConsumer:
    """What ``_on_assign`` asks of confluent-kafka's consumer: the group's committed
    offsets (or a failure to read them), the log's end, and the commits it makes."""

    def __init__(self, committed: dict[int, int] | None, high: int) -> None:
        self._committed = committed
        self.high = high
        self.commits: list[list[TopicPartition]] = []
        self.assigned: list[TopicPartition] = []

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        if self._committed is None:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return [
            TopicPartition(tp.topic, tp.partition, self._committed.get(tp.partition, -1001))
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, tp: TopicPartition, timeout: float, cached: bool
    ) -> tuple[int, int]:
        return 0, self.high

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append(offsets)

    def incremental_assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned += partitions


@pytest.mark.parametrize(
    ("committed", "starts", "pinned"),
    [
        ({}, 500, [500]),  # the group's first owner: the log's end, committed at once
        ({0: 320}, 320, []),  # a later owner: where the first started
        (None, OFFSET_END, []),  # offsets unknown: the end, an earlier pin not overwritten
    ],
)
def test_start_at_latest_starts_where_the_group_first_took_the_partition(
    tmp_path: Path, committed: dict[int, int] | None, starts: int, pinned: list[int]
) -> None:
    settings = Settings(topic_prefix="ns.", data_dir=tmp_path)
    config = ArchiveConfig(root=str(tmp_path / "a"), topics=("events.clean",), start_at="latest")
    agent = ArchiveAgent(
        settings, config, registry=InMemoryRegistry(), topic_id=lambda topic: "a-topic-id"
    )
    consumer = _GroupConsumer(committed, high=500)
    agent._on_assign(consumer, [TopicPartition("ns.events.clean", 0)])  # type: ignore[arg-type]
    assert [tp.offset for tp in consumer.assigned] == [starts]
    assert [tp.offset for offsets in consumer.commits for tp in offsets] == pinned


def test_a_retention_pass_the_object_store_does_not_answer_waits_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With S3 away, the listing raises botocore's own error (not an OSError): it stopped
    the worker, abandoning every in-progress file, over a deletion that can wait."""
    from botocore.exceptions import EndpointConnectionError

    settings = Settings(topic_prefix="ns.", data_dir=tmp_path)
    config = ArchiveConfig(root=str(tmp_path / "a"), topics=("events.clean",))
    agent = ArchiveAgent(settings, config, registry=InMemoryRegistry())
    agent.archivers[("ns.events.clean", 0)] = None  # type: ignore[assignment]

    def unreachable(topic: str) -> list[ArchiveFile]:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/arch")

    monkeypatch.setattr(agent.store, "list_files", unreachable)
    agent._expire(retention_hours=1)
    assert "deleting ns.events.clean's files past retention failed" in caplog.text
    assert "Could not connect to the endpoint URL" in caplog.text


def test_archive_ls_sizes_come_from_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sizes `archive ls` and `expire` print come from the one listing: on S3 each
    file's own request (a HEAD) made 119 files take 8 s against a local server."""
    bucket = 1_764_504_000_000 - 1_764_504_000_000 % 3_600_000
    file = ArchiveFile("telemetry.events", 0, 0, 9, bucket, "avro")
    (tmp_path / file.path).parent.mkdir(parents=True)
    (tmp_path / file.path).write_bytes(b"x" * 7)
    store = ArchiveStore(str(tmp_path))

    def one_request_per_file(path: str) -> int:
        raise AssertionError(f"a request for {path}'s size")

    monkeypatch.setattr(store.fs, "size", one_request_per_file)
    [listed] = store.list_files("telemetry.events")
    assert store.size(listed) == 7
