"""One partition's archiving, against local and in-memory (fsspec) roots, no broker.

The crash tests stop an archiver at many points of one log (after any record, before or
after a file's rename or upload) and resume the way a new worker does: from the final
files alone. Whatever the point, the files in the end are exactly those of a run that
never stopped: same names, same rows, every offset once.
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq
import pytest
from confluent_kafka import (
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    TIMESTAMP_NOT_AVAILABLE,
    Message,
)

from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.layout import HOUR_MS, ArchiveFile, Format, resume_points
from streamlearn.archive.partition import CloseReason, Completed, Limits, PartitionArchiver
from streamlearn.archive.reader import ArchivedRecord, read_archive
from streamlearn.archive.storage import ArchiveStore
from streamlearn.serde import AvroSerde, InMemoryRegistry, frame, load_schema

TOPIC = "ns.telemetry.events"
START = datetime(2026, 11, 30, 9, 40, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)


class CrashError(Exception):
    """A simulated process death."""


def _event(n: int, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.UUID(int=n)),
        "event_type": "page_view",
        "user_id": f"u-{n % 7}",
        "client_ts": at,
        "received_ts": at,
        "url": f"https://shop.example/p/{n}",
        "app_version": "web-1",
        "properties": {"n": str(n)},
    }


def _v2_schema() -> dict[str, Any]:
    schema = copy.deepcopy(load_schema("TelemetryEvent"))
    schema["fields"].append({"name": "archive_test", "type": ["null", "string"], "default": None})
    return schema


class Log:
    """A partition's records as Kafka would deliver them, and what was produced."""

    def __init__(self) -> None:
        self.registry = InMemoryRegistry()
        self.messages: list[Message] = []
        self.produced: dict[int, Any] = {}
        self._v1 = AvroSerde(self.registry, "TelemetryEvent", f"{TOPIC}-value")
        self._v2 = AvroSerde(self.registry, _v2_schema(), f"{TOPIC}-value")

    def add(
        self,
        value: bytes | None,
        ts_ms: int,
        produced: Any = None,
        *,
        ts_type: int = TIMESTAMP_CREATE_TIME,
        key: bytes | None = b"user",
        headers: list[tuple[str, bytes | None]] | None = None,
    ) -> None:
        offset = len(self.messages) * 2  # gaps, as after transaction markers
        self.messages.append(
            Message(
                topic=TOPIC,
                partition=4,
                offset=offset,
                key=key,
                value=value,
                timestamp=(ts_type, ts_ms),
                headers=headers,
            )
        )
        self.produced[offset] = produced

    def event(self, n: int, at: datetime, *, v2: bool = False) -> None:
        event = _event(n, at)
        if v2:
            event["archive_test"] = f"v2-{n}"
        serde = self._v2 if v2 else self._v1
        self.add(serde.encode(event), int(at.timestamp() * 1000), event)

    def from_offset(self, offset: int | None) -> list[Message]:
        return [m for m in self.messages if offset is None or (m.offset() or 0) >= offset]


def make_log() -> Log:
    """Three hours of events with what a real partition holds: late records, a schema
    change, undecodable values, a null value, records without timestamps, headers."""
    log = Log()
    n = 0
    for minute in range(0, 150, 3):  # 09:40 → 12:07
        at = START + timedelta(minutes=minute)
        log.event(n, at, v2=60 <= minute < 90)
        n += 1
        if minute % 21 == 0:  # a late event, 70 minutes behind
            log.event(n, at - timedelta(minutes=70))
            n += 1
    stamp = START_MS + 40 * 60_000
    log.add(b"not avro at all", stamp)  # bad magic byte
    log.add(frame(424242, b"\x02"), stamp)  # unknown schema id
    log.add(frame(1, b"\x02"), stamp)  # truncated body
    log.add(None, stamp)  # a tombstone
    log.add(b"\x00", stamp, key=None, headers=[("trace", b"t-1"), ("empty", None)])
    log.add(log.messages[0].value(), 0, log.produced[0], ts_type=TIMESTAMP_NOT_AVAILABLE)
    log.add(log.messages[1].value(), stamp, log.produced[2], ts_type=TIMESTAMP_LOG_APPEND_TIME)
    # …and move on, so the records above sit in the middle of the log.
    for k in range(10):
        log.event(1000 + k, START + timedelta(minutes=150 + k))
    return log


LIMITS = Limits(max_records=9, max_bytes=10_000_000, idle_close_s=3600)


def _archiver(
    store: ArchiveStore, log: Log, fmt: Format = "avro", limits: Limits = LIMITS, **kwargs: Any
) -> PartitionArchiver:
    point = resume_points(store.list_files(TOPIC)).get((TOPIC, 4))
    return PartitionArchiver(
        TOPIC,
        4,
        point,
        store=store,
        decoder=WriterDecoder(log.registry),
        fmt=fmt,
        limits=limits,
        **kwargs,
    )


def _run(store: ArchiveStore, log: Log, fmt: Format = "avro", batch: int = 5) -> list[Completed]:
    """Archive the whole log from where the files say, then close what is open."""
    archiver = _archiver(store, log, fmt)
    store.discard_partials(TOPIC, 4)
    messages = log.from_offset(archiver.next_offset)
    done: list[Completed] = []
    for i in range(0, len(messages), batch):
        done += archiver.add(messages[i : i + batch])
    archiver.clock = lambda: float("inf")
    last = archiver.close_if_idle()
    if last is not None:
        done.append(last)
    return done


def _contents(root: str, **options: Any) -> dict[str, list[ArchivedRecord]]:
    store = ArchiveStore(root, storage_options=options)
    files = store.list_files(TOPIC)
    records: dict[str, list[ArchivedRecord]] = {f.path: [] for f in files}
    for record in read_archive(root, TOPIC, storage_options=options):
        path = next(f.path for f in files if f.first_offset <= record.offset <= f.last_offset)
        records[path].append(record)
    return records


@pytest.fixture(scope="module")
def log() -> Log:
    return make_log()


@pytest.fixture(params=["avro", "parquet"])
def fmt(request: pytest.FixtureRequest) -> Format:
    return request.param  # type: ignore[no-any-return]


def test_every_record_is_archived_once_in_order(tmp_path: Path, log: Log, fmt: Format) -> None:
    root = str(tmp_path / "archive")
    done = _run(ArchiveStore(root), log, fmt)
    records = list(read_archive(root, TOPIC))
    assert [r.offset for r in records] == [m.offset() for m in log.messages]
    assert sum(d.records for d in done) == len(log.messages)
    by_offset = {m.offset(): m for m in log.messages}
    for record in records:
        message = by_offset[record.offset]
        assert record.key == message.key()
        assert record.partition == 4
        assert record.topic == TOPIC
        produced = log.produced[record.offset]
        if produced is not None:
            assert record.error is None
            assert record.raw is None
            expected = {k: v for k, v in produced.items()}
            expected["event_id"] = uuid.UUID(expected["event_id"])
            assert {k: record.value[k] for k in expected} == expected
        elif message.value() is None:
            assert (record.value, record.raw, record.error) == (None, None, None)
        else:
            assert record.value is None
            assert record.raw == message.value()
            assert record.error in ("bad_magic_byte", "unknown_schema_id", "truncated_body")
            assert record.error_detail
    headers = next(r for r in records if r.headers)
    assert headers.headers == (("trace", b"t-1"), ("empty", None))
    no_time = next(r for r in records if r.timestamp_type == "NOT_AVAILABLE")
    assert no_time.timestamp_ms is None
    assert {r.timestamp_type for r in records} == {
        "CREATE_TIME",
        "LOG_APPEND_TIME",
        "NOT_AVAILABLE",
    }


def test_files_are_cut_by_hour_schema_and_size(tmp_path: Path, log: Log) -> None:
    root = str(tmp_path / "archive")
    done = _run(ArchiveStore(root), log)
    reasons = {d.reason for d in done}
    assert {CloseReason.HOUR, CloseReason.SCHEMA, CloseReason.RECORDS} <= reasons
    files = [d.file for d in done]
    # Consecutive ranges, buckets never going back, at most max_records per file.
    for before, after in itertools.pairwise(files):
        assert after.first_offset > before.last_offset
        assert after.bucket_ms >= before.bucket_ms
    assert all(d.records <= LIMITS.max_records for d in done)
    # Every file holds one writer schema (or none decoded).
    for file in files:
        ids = {
            r.schema_id
            for r in read_archive(root, TOPIC)
            if file.first_offset <= r.offset <= file.last_offset
        }
        assert len(ids - {None}) <= 1
    # A late record keeps its timestamp and sits in the current hour's file.
    late = [d.late for d in done]
    assert sum(late) >= 5
    for record in read_archive(root, TOPIC):
        file = next(f for f in files if f.first_offset <= record.offset <= f.last_offset)
        if record.timestamp_ms is not None:
            assert record.timestamp_ms < file.bucket_ms + HOUR_MS
    undecodable = sum(sum(d.undecodable.values()) for d in done)
    assert undecodable == 4


def test_size_limit_counts_kafka_bytes(tmp_path: Path, log: Log) -> None:
    store = ArchiveStore(str(tmp_path / "archive"))
    archiver = _archiver(store, log, limits=Limits(max_records=10**6, max_bytes=600))
    done = archiver.add(log.messages[:12])
    assert done
    assert {d.reason for d in done} <= {CloseReason.BYTES, CloseReason.HOUR}
    assert CloseReason.BYTES in {d.reason for d in done}
    archiver.abandon()


def test_idle_close_on_the_wall_clock(tmp_path: Path, log: Log) -> None:
    now = [0.0]
    store = ArchiveStore(str(tmp_path / "archive"))
    archiver = _archiver(store, log, limits=Limits(idle_close_s=5), clock=lambda: now[0])
    assert archiver.add(log.messages[:2]) == []
    now[0] = 4.9
    assert archiver.close_if_idle() is None
    now[0] = 5.0
    done = archiver.close_if_idle()
    assert done is not None
    assert done.reason is CloseReason.IDLE
    assert (done.file.first_offset, done.file.last_offset) == (0, 2)
    assert archiver.close_if_idle() is None


def test_redelivered_records_are_skipped(tmp_path: Path, log: Log) -> None:
    store = ArchiveStore(str(tmp_path / "archive"))
    archiver = _archiver(store, log)
    archiver.add(log.messages[:4])
    archiver.add(log.messages[2:6])
    assert archiver.skipped == 2
    archiver.clock = lambda: float("inf")
    done = archiver.close_if_idle()
    assert done is not None
    offsets = [r.offset for r in read_archive(str(tmp_path / "archive"), TOPIC)]
    assert offsets == [m.offset() for m in log.messages[:6]]


def test_abandoned_file_leaves_nothing(tmp_path: Path, log: Log) -> None:
    root = tmp_path / "archive"
    store = ArchiveStore(str(root))
    archiver = _archiver(store, log)
    archiver.add(log.messages[:3])
    assert list((root / "_partial").rglob("*.inprogress"))
    assert archiver.abandon() == 3
    assert not list((root / "_partial").rglob("*.inprogress"))
    assert store.list_files(TOPIC) == []


_REFERENCES: dict[Format, dict[str, list[ArchivedRecord]]] = {}


def _reference(tmp_path: Path, log: Log, fmt: Format) -> dict[str, list[ArchivedRecord]]:
    """The files of a run that never stopped (computed once per format)."""
    if fmt not in _REFERENCES:
        root = str(tmp_path / "reference")
        _run(ArchiveStore(root), log, fmt)
        _REFERENCES[fmt] = _contents(root)
    return _REFERENCES[fmt]


@pytest.mark.parametrize("crash_after", [0, 1, 7, 9, 10, 23, 40, 61, 75])
def test_crash_after_any_record_resumes_exactly(
    tmp_path: Path, log: Log, fmt: Format, crash_after: int
) -> None:
    """SIGKILL while writing: in-progress files stay behind, final ones are kept."""
    reference = _reference(tmp_path, log, fmt)
    root = str(tmp_path / "archive")
    first = _archiver(ArchiveStore(root), log, fmt)
    first.add(log.messages[:crash_after])  # …and the process dies: no abandon, no close
    _die(first)
    _run(ArchiveStore(root), log, fmt)
    assert _contents(root) == reference
    assert not list((tmp_path / "archive" / "_partial").rglob("*.inprogress"))


def _die(archiver: PartitionArchiver) -> None:
    """What a killed process leaves: its in-progress file on disk, unpublished (the
    handle is closed only so the test does not leak it)."""
    if archiver._open is not None:
        archiver._open.writer.finish()


class FailingStore(ArchiveStore):
    """Dies at the n-th publish, before or after the file became final."""

    def __init__(self, root: str, fail_at: int, after: bool, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self.fail_at, self.after, self.calls = fail_at, after, 0

    def publish(self, partial: Path, file: ArchiveFile) -> None:
        self.calls += 1
        if self.calls == self.fail_at and not self.after:
            raise CrashError("before the rename")
        super().publish(partial, file)
        if self.calls == self.fail_at:
            raise CrashError("after the rename, before the commit")


@pytest.mark.parametrize("fail_at", [1, 2, 5, 8])
@pytest.mark.parametrize("after", [False, True], ids=["before-publish", "after-publish"])
def test_crash_around_publish_resumes_exactly(
    tmp_path: Path, log: Log, fmt: Format, fail_at: int, after: bool
) -> None:
    reference = _reference(tmp_path, log, fmt)
    root = str(tmp_path / "archive")
    with pytest.raises(CrashError):
        _run(FailingStore(root, fail_at, after), log, fmt)
    _run(ArchiveStore(root), log, fmt)
    assert _contents(root) == reference


@pytest.fixture
def memory_root() -> Iterator[str]:
    """An fsspec in-memory root: not local, so files are staged and uploaded."""
    import fsspec

    root = f"memory://archive-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.mark.parametrize("fail_at", [1, 3])
def test_interrupted_upload_leaves_no_object(
    tmp_path: Path, log: Log, memory_root: str, fail_at: int
) -> None:
    reference = _reference(tmp_path, log, "avro")
    staging = tmp_path / "staging"
    store = ArchiveStore(memory_root, staging_dir=staging)
    calls = [0]
    real_put = store.fs.put_file

    def put_file(local: str, remote: str, **kwargs: Any) -> None:
        calls[0] += 1
        if calls[0] == fail_at:
            raise CrashError("connection lost during the upload")
        real_put(local, remote, **kwargs)

    store.fs.put_file = put_file  # type: ignore[method-assign]
    try:
        with pytest.raises(CrashError):
            _run(store, log)
    finally:
        store.fs.put_file = real_put  # type: ignore[method-assign]
    assert len(store.list_files(TOPIC)) == fail_at - 1
    _run(ArchiveStore(memory_root, staging_dir=staging), log)
    assert _contents(memory_root) == reference
    assert not list(staging.rglob("*.inprogress"))


def test_files_are_plain_avro_and_parquet(tmp_path: Path, log: Log) -> None:
    """Other tools read the files: the Avro files embed the writer schema, the Parquet
    files keep it in their metadata."""
    for fmt in ("avro", "parquet"):
        root = tmp_path / fmt
        _run(ArchiveStore(str(root)), log, fmt)  # type: ignore[arg-type]
        paths = sorted(p for p in root.rglob(f"*.{fmt}"))
        assert paths
        total = 0
        for path in paths:
            if fmt == "avro":
                with path.open("rb") as handle:
                    reader = fastavro.reader(handle)
                    rows = list(reader)
                    value_type = next(
                        f["type"] for f in reader.writer_schema["fields"] if f["name"] == "value"
                    )
                    if rows[0]["schema_id"] is not None:
                        assert value_type[1]["name"] == "io.streamlearn.TelemetryEvent"
            else:
                table = pq.read_table(path)
                rows = table.to_pylist()
                metadata = table.schema.metadata
                if rows[0]["schema_id"] is not None:
                    writer = json.loads(metadata[b"streamlearn.writer_schema"])
                    assert writer["name"] == "TelemetryEvent"
                    assert table.schema.field("value").type.get_field_index("client_ts") >= 0
            total += len(rows)
        assert total == len(log.messages)


def test_both_formats_read_back_the_same(tmp_path: Path, log: Log) -> None:
    _run(ArchiveStore(str(tmp_path / "a")), log, "avro")
    _run(ArchiveStore(str(tmp_path / "p")), log, "parquet")
    avro = list(read_archive(str(tmp_path / "a"), TOPIC))
    parquet = list(read_archive(str(tmp_path / "p"), TOPIC))
    assert avro == parquet


def test_reader_ranges_and_overlapping_copies(tmp_path: Path, log: Log) -> None:
    root = tmp_path / "archive"
    _run(ArchiveStore(str(root)), log)
    offsets = [m.offset() or 0 for m in log.messages]
    got = [
        r.offset for r in read_archive(str(root), TOPIC, start_offsets={4: 21}, end_offsets={4: 60})
    ]
    assert got == [o for o in offsets if 21 <= o < 60]
    assert list(read_archive(str(root), TOPIC, partitions=[0])) == []
    # A second copy of a range, cut elsewhere (an idle close of a zombie worker): each
    # offset is still read once.
    files = ArchiveStore(str(root)).list_files(TOPIC)
    first = files[0]
    copy_path = (
        root
        / ArchiveFile(
            TOPIC, 4, first.first_offset, first.last_offset - 2, first.bucket_ms, "avro"
        ).path
    )
    with (root / first.path).open("rb") as src:
        rows = [r for r in fastavro.reader(src) if r["offset"] <= first.last_offset - 2]
        schema = fastavro.reader(io.BytesIO((root / first.path).read_bytes())).writer_schema
    with copy_path.open("wb") as out:
        fastavro.writer(out, schema, rows)
    assert [r.offset for r in read_archive(str(root), TOPIC)] == offsets


def test_writer_schema_without_namespace_keeps_its_name(tmp_path: Path) -> None:
    registry = InMemoryRegistry()
    schema = {"type": "record", "name": "Bare", "fields": [{"name": "x", "type": "long"}]}
    schema_id = registry.register(f"{TOPIC}-value", json.dumps(schema))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(schema), {"x": 7})
    message = Message(
        topic=TOPIC, partition=4, offset=0, key=None,
        value=frame(schema_id, body.getvalue()), timestamp=(TIMESTAMP_CREATE_TIME, START_MS),
    )  # fmt: skip
    store = ArchiveStore(str(tmp_path))
    archiver = PartitionArchiver(
        TOPIC, 4, None, store=store, decoder=WriterDecoder(registry), fmt="avro", limits=LIMITS
    )
    archiver.add([message])
    archiver.clock = lambda: float("inf")
    done = archiver.close_if_idle()
    assert done is not None
    with (tmp_path / done.file.path).open("rb") as handle:
        reader = fastavro.reader(handle)
        assert [r["value"] for r in reader] == [{"x": 7}]
        value_type = next(f["type"] for f in reader.writer_schema["fields"] if f["name"] == "value")
        assert value_type[1]["name"] == "Bare"


def test_decoded_values_encode_back_to_the_same_bytes(log: Log) -> None:
    """What the archive keeps of a value is exact: written with its writer schema it is
    the body that was read, so a replay can produce the very same bytes."""
    decoder = WriterDecoder(log.registry)
    checked = 0
    for message in log.messages:
        data = message.value()
        if log.produced.get(message.offset() or 0) is None or data is None:
            continue
        writer, value = decoder.decode(data)
        body = io.BytesIO()
        fastavro.schemaless_writer(body, fastavro.parse_schema(writer.schema), value)
        assert frame(writer.schema_id, body.getvalue()) == data
        checked += 1
    assert checked > 50


def test_garbage_after_a_valid_header_is_refused_or_exact(log: Log) -> None:
    """Random bodies under a real schema id: either a DecodeError (archived raw, with the
    reason) or a value that encodes back to exactly those bytes, never anything else."""
    import random

    from streamlearn.serde import DecodeError

    decoder = WriterDecoder(log.registry)
    rng = random.Random(7)
    refused = 0
    for _ in range(2000):
        data = frame(1, rng.randbytes(rng.randrange(0, 120)))
        try:
            writer, value = decoder.decode(data)
        except DecodeError:
            refused += 1
            continue
        body = io.BytesIO()
        fastavro.schemaless_writer(body, fastavro.parse_schema(writer.schema), value)
        assert frame(writer.schema_id, body.getvalue()) == data
    assert refused > 1000


def test_a_logical_value_that_cannot_be_read_is_archived_raw(tmp_path: Path, log: Log) -> None:
    """A UUID field holding "not-a-uuid" is valid Avro bytes, but every reader that
    applies logical types fails on it: archived as raw bytes, so the file stays readable."""
    schema = copy.deepcopy(load_schema("TelemetryEvent"))
    schema_id = log.registry.register(f"{TOPIC}-value", json.dumps(schema))
    plain = copy.deepcopy(schema)
    plain["fields"][0]["type"] = "string"  # event_id without its logical type
    event = _event(1, START)
    event["event_id"] = "not-a-uuid"
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(plain), event)
    bad = frame(schema_id, body.getvalue())
    messages = [
        Message(topic=TOPIC, partition=4, offset=n, key=None, value=value,
                timestamp=(TIMESTAMP_CREATE_TIME, START_MS))
        for n, value in enumerate([log.messages[0].value(), bad, log.messages[0].value()])
    ]  # fmt: skip
    store = ArchiveStore(str(tmp_path))
    archiver = _archiver(store, log)
    archiver.add(messages)
    archiver.clock = lambda: float("inf")
    done = archiver.close_if_idle()
    assert done is not None
    assert done.undecodable == {"undecodable": 1}
    records = list(read_archive(str(tmp_path), TOPIC))
    assert [r.error for r in records] == [None, "undecodable", None]
    assert records[1].raw == bad
