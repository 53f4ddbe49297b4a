"""The ingest path on the real broker: preprocess and sessionise against known truth."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streamlearn.agents import STEPS
from streamlearn.runtime.worker import create_faust_app
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests import ingest_dataset
from tests.ingest_dataset import GAP_S, IngestDataset
from tests.support import committed_to_end, reference_sessions, session_tuple


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(
        update={
            "session_gap_s": GAP_S,
            "session_allowed_lateness_s": ingest_dataset.LATENESS_S,
            "bot_burst_length": ingest_dataset.BURST_LENGTH,
            "data_dir": tmp_path,
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def _produce(settings: Settings, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    for key, value in records:
        producer.produce(settings.topic_prefix + "telemetry.events", key=key, value=value)
    assert producer.flush(30) == 0


def _flush_events(
    serde: AvroSerde, data: IngestDataset, partitions: int
) -> list[tuple[bytes, bytes]]:
    """One event per partition, a day later: every partition's watermark passes everything."""
    template = next(iter(data.clean_events.values()))
    later = template["client_ts"] + timedelta(days=1)
    users: dict[int, str] = {}
    for n in itertools.count():
        user = f"flush-{n}"
        users.setdefault((murmur2(user.encode()) & 0x7FFFFFFF) % partitions, user)
        if len(users) == partitions:
            break
    return [
        (
            user.encode(),
            serde.encode(
                dict(
                    template,
                    event_id=str(uuid.uuid4()),
                    user_id=user,
                    client_ts=later,
                    received_ts=later,
                )
            ),
        )
        for user in users.values()
    ]


def _read(
    settings: Settings,
    topic: str,
    done: Callable[[list[Any]], bool],
    timeout_s: float = 120,
) -> list[Any]:
    """Committed messages of ``topic`` from the start until ``done(messages)`` (or the
    timeout: the caller's assertions then show what is missing), plus any that arrive
    within a second after (a duplicate would show up there)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    name = settings.topic_prefix + topic
    partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
    consumer.assign([TopicPartition(name, p, 0) for p in partitions])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(messages) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                assert message.error() is None
                messages.append(message)
        messages += consumer.consume(500, timeout=1.0)
    finally:
        consumer.close()
    return messages


def _final_sessions(serde: AvroSerde, messages: list[Any]) -> dict[str, dict[str, Any]]:
    """The newest version of each session (a correction replaces what it corrects)."""
    final: dict[str, dict[str, Any]] = {}
    for message in messages:
        session = serde.decode(message.value())
        final[session["session_id"]] = session
    return final


async def test_preprocess_and_sessionise_against_truth(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    prefix = settings.topic_prefix
    events = AvroSerde.for_topic(registry, prefix + "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events)
    # The data set exercises every case (a seed change must not silently drop one).
    assert data.duplicates
    assert data.too_late
    assert len(data.malformed) == 3
    assert set(data.bots.values()) == {"crawler_user_agent", "inhuman_burst"}
    flush = _flush_events(events, data, partitions=6)
    await asyncio.to_thread(_produce, settings, data.records + flush)
    # A poison record straight into events.clean: sessionise must reject it, not crash.
    poison = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    poison.produce(prefix + "events.clean", key=b"human-0", value=b"not avro")
    poison.flush(30)

    runtime = create_faust_app(
        settings, list(STEPS.values()), registry=registry, data_dir=tmp_path / "faust"
    )
    app = runtime.app
    await app.start()
    try:
        expected_clean = len(data.clean_events) + len(flush) + 1  # + the poison record
        clean = await asyncio.to_thread(
            _read, settings, "events.clean", lambda m: len(m) >= expected_clean
        )
        rejected = await asyncio.to_thread(
            _read, settings, "events.rejected", lambda m: len(m) >= sum(data.malformed.values()) + 1
        )
        truth = [dict(e, event_ts=e["client_ts"]) for e in data.clean_events.values()]
        reference = reference_sessions(truth, GAP_S)
        session_serde = AvroSerde.for_topic(registry, prefix + "events.sessions", "Session")
        sessions = await asyncio.to_thread(
            _read,
            settings,
            "events.sessions",
            lambda m: (
                {session_tuple(s) for s in _final_sessions(session_serde, m).values()} >= reference
            ),
        )
    finally:
        await app.stop()

    clean_serde = AvroSerde.for_topic(registry, prefix + "events.clean", "CleanEvent")
    clean_ids = [
        str(clean_serde.decode(m.value())["event_id"]) for m in clean if m.value() != b"not avro"
    ]
    flush_ids = {str(events.decode(value)["event_id"]) for _, value in flush}
    assert len(clean_ids) == len(set(clean_ids)), "every valid event exactly once"
    assert set(clean_ids) == set(data.clean_events) | flush_ids
    assert not set(clean_ids) & set(data.bots), "no bot event is forwarded"

    metrics = runtime.metrics
    assert metrics.value(metrics.events, outcome="duplicate") == data.duplicates
    for rule in set(data.bots.values()):
        expected = sum(1 for r in data.bots.values() if r == rule)
        assert metrics.value(metrics.bots, rule=rule) == expected, rule

    rejected_serde = AvroSerde.for_topic(registry, prefix + "events.rejected", "RejectedRecord")
    reasons: dict[str, int] = {}
    by_sessionise = []
    for message in rejected:
        record = rejected_serde.decode(message.value())
        if record["agent"] == "sessionise":
            by_sessionise.append(record)
            continue
        assert record["source_topic"] == prefix + "telemetry.events"
        assert record["value"] is not None or record["reason"] == "truncated_body"
        reasons[record["reason"]] = reasons.get(record["reason"], 0) + 1
    assert reasons == data.malformed
    for reason, count in data.malformed.items():  # counted once each
        assert metrics.value(metrics.rejected, agent="preprocess", reason=reason) == count
    assert metrics.value(metrics.rejected, agent="sessionise", reason="bad_magic_byte") == 1
    assert [(r["source_topic"], r["reason"], r["value"]) for r in by_sessionise] == [
        (prefix + "events.clean", "bad_magic_byte", b"not avro")
    ]

    final = _final_sessions(session_serde, sessions)
    emitted = {session_tuple(s) for s in final.values() if not s["user_id"].startswith("flush-")}
    assert emitted == reference, "sessions equal the offline reference"
    first_versions = [session_serde.decode(m.value()) for m in sessions]
    closed_ids = [s["session_id"] for s in first_versions if not s["is_correction"]]
    assert len(closed_ids) == len(set(closed_ids)), "no session is emitted twice"
    print(
        f"{len(clean_ids)} clean, {len(reference)} sessions, "
        f"{len(first_versions) - len(closed_ids)} corrections, late: "
        + ", ".join(
            f"{h}={metrics.value(metrics.late_events, handling=h):.0f}"
            for h in ("attached", "correction", "new_session")
        )
    )


def _read_outputs(
    settings: Settings,
    registry: RegistryClient,
    data: IngestDataset,
    flush: list[tuple[bytes, bytes]],
    began: float,
) -> tuple[list[Any], set[tuple[Any, ...]], AvroSerde, list[Any]]:
    """events.clean once every clean event is in, then events.sessions once they match the
    offline reference: (clean, reference, session serde, sessions)."""
    expected_clean = len(data.clean_events) + len(flush)
    clean = _read(settings, "events.clean", lambda m: len(m) >= expected_clean, timeout_s=180)
    print(f"all clean after {time.monotonic() - began:.1f}s")
    truth = [dict(e, event_ts=e["client_ts"]) for e in data.clean_events.values()]
    reference = reference_sessions(truth, GAP_S)
    topic = settings.topic_prefix + "events.sessions"
    session_serde = AvroSerde.for_topic(registry, topic, "Session")
    sessions = _read(
        settings,
        "events.sessions",
        lambda m: (
            {session_tuple(s) for s in _final_sessions(session_serde, m).values()} >= reference
        ),
        timeout_s=180,
    )
    print(f"all sessions after {time.monotonic() - began:.1f}s")
    return clean, reference, session_serde, sessions


def _worker_factory(
    settings: Settings, dedup_window_s: int
) -> Callable[[], subprocess.Popen[bytes]]:
    """Starts `streamlearn agents run` worker processes configured like ``settings``."""
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMLEARN_SESSION_GAP_S": str(GAP_S),
        "STREAMLEARN_SESSION_ALLOWED_LATENESS_S": str(ingest_dataset.LATENESS_S),
        "STREAMLEARN_BOT_BURST_LENGTH": str(ingest_dataset.BURST_LENGTH),
        "STREAMLEARN_CONSUMER_SESSION_TIMEOUT_S": "6",
        "STREAMLEARN_DEDUP_WINDOW_S": str(dedup_window_s),
        "STREAMLEARN_DATA_DIR": str(settings.data_dir),
        "STREAMLEARN_MODEL_SIGNING_KEY": "integration-test-signing-key",
        "STREAMLEARN_LOG_LEVEL": os.environ.get("STREAMLEARN_LOG_LEVEL", "INFO"),
    }

    started = itertools.count(1)

    def worker() -> subprocess.Popen[bytes]:
        # Each worker's log stays in the test's data dir for a failure's post-mortem.
        log = settings.data_dir / f"worker-{next(started)}.log"
        with log.open("wb") as output:
            return subprocess.Popen(
                [sys.executable, "-m", "streamlearn", "agents", "run"],
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    return worker


def _clean_copies(serde: AvroSerde, messages: list[Any]) -> dict[str, list[tuple[Any, ...]]]:
    """event id → (source partition, source offset, user) of every copy in events.clean."""
    copies: dict[str, list[tuple[Any, ...]]] = {}
    for message in messages:
        record = serde.decode(message.value())
        key = (record["source_partition"], record["source_offset"], record["user_id"])
        copies.setdefault(str(record["event_id"]), []).append(key)
    return copies


def test_sigkilled_worker_loses_nothing_and_sessions_stay_exact(
    settings: Settings, registry: RegistryClient
) -> None:
    prefix = settings.topic_prefix
    events = AvroSerde.for_topic(registry, prefix + "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=11, humans=60)
    flush = _flush_events(events, data, partitions=6)
    half = len(data.records) // 2
    # The first worker dies before its first commit with the whole first half behind it,
    # so the replay spans hours of event time: remember ids that long.
    worker = _worker_factory(settings, dedup_window_s=6 * 3600)

    began = time.monotonic()
    _produce(settings, data.records[:half])
    first = worker()
    try:
        _read(settings, "events.clean", lambda m: len(m) >= half // 4)
    finally:
        first.kill()
        first.wait()
    print(f"killed after {time.monotonic() - began:.1f}s")

    _produce(settings, data.records[half:] + flush)
    second = worker()
    try:
        clean, reference, session_serde, sessions = _read_outputs(
            settings, registry, data, flush, began
        )
    finally:
        second.send_signal(signal.SIGTERM)
        stopped = second.wait(timeout=60)
    assert stopped == 0, "SIGTERM stops the worker cleanly"

    # At-least-once: the events processed after the last commit before the kill are read
    # again, so events.clean may hold them twice, but never loses one, and every copy is
    # the same record (same id, same source offset), which is what makes it idempotent.
    clean_serde = AvroSerde.for_topic(registry, prefix + "events.clean", "CleanEvent")
    copies = _clean_copies(clean_serde, clean)
    assert set(data.clean_events) <= set(copies), "no event lost across the kill"
    assert not set(copies) & set(data.bots)
    assert all(len(set(versions)) == 1 for versions in copies.values()), "copies are identical"

    # Sessions are exact: sessionise counts an event id once, and a session re-emitted
    # after the kill is the same record as before it.
    final = _final_sessions(session_serde, sessions)
    emitted = {session_tuple(s) for s in final.values() if not s["user_id"].startswith("flush-")}
    assert emitted == reference
    by_id: dict[str, set[tuple[Any, ...]]] = {}
    for message in sessions:
        session = session_serde.decode(message.value())
        if not session["is_correction"]:
            by_id.setdefault(session["session_id"], set()).add(session_tuple(session))
    assert all(len(versions) == 1 for versions in by_id.values()), (
        "re-emitted sessions are identical"
    )


def _wait_until_committed(settings: Settings, topic: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not committed_to_end(settings, topic):
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic}: not committed to its end within {timeout_s:.0f}s")
        time.sleep(0.5)


def _wait_for_members(settings: Settings, count: int, timeout_s: float = 90) -> None:
    """Until the agents' consumer group is stable with ``count`` members, each assigned."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    group = f"{settings.topic_prefix}streamlearn-agents"
    deadline = time.monotonic() + timeout_s
    members: list[Any] = []
    while time.monotonic() < deadline:
        description = admin.describe_consumer_groups([group])[group].result(timeout=10)
        members = description.members
        stable = description.state == ConsumerGroupState.STABLE
        if stable and len(members) == count and all(m.assignment.topic_partitions for m in members):
            return
        time.sleep(0.5)
    raise AssertionError(f"group {group} did not reach {count} assigned members: {members}")


def test_rebalances_hand_partitions_over_without_loss_or_duplicates(
    settings: Settings, registry: RegistryClient
) -> None:
    """A second worker joins mid-stream, then the first is stopped with SIGTERM: both are
    rebalances, and each hands its partitions over with its batches' offsets committed."""
    prefix = settings.topic_prefix
    events = AvroSerde.for_topic(registry, prefix + "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=23, humans=60)
    flush = _flush_events(events, data, partitions=6)
    third = len(data.records) // 3
    worker = _worker_factory(settings, dedup_window_s=6 * 3600)

    began = time.monotonic()
    _produce(settings, data.records[:third])
    first = worker()
    second: subprocess.Popen[bytes] | None = None
    try:
        _read(settings, "events.clean", lambda m: len(m) >= third // 4)
        _wait_until_committed(settings, "telemetry.events")
        print(f"committed after {time.monotonic() - began:.1f}s")
        second = worker()
        _wait_for_members(settings, 2)
        _produce(settings, data.records[third : 2 * third])
        _read(settings, "events.clean", lambda m: len(m) >= third)
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == 0, "SIGTERM stops the first worker cleanly"
        print(f"first stopped after {time.monotonic() - began:.1f}s")
        _produce(settings, data.records[2 * third :] + flush)
        clean, reference, session_serde, sessions = _read_outputs(
            settings, registry, data, flush, began
        )
    finally:
        first.kill()
        first.wait()
        if second is not None:
            second.send_signal(signal.SIGTERM)
            assert second.wait(timeout=60) == 0, "SIGTERM stops the second worker cleanly"

    clean_serde = AvroSerde.for_topic(registry, prefix + "events.clean", "CleanEvent")
    copies = _clean_copies(clean_serde, clean)
    flush_ids = {str(events.decode(value)["event_id"]) for _, value in flush}
    assert set(copies) == set(data.clean_events) | flush_ids, "no event lost, no bot forwarded"
    assert all(len(set(where)) == 1 for where in copies.values()), "copies are identical"
    # A hand-over commits what the worker processed (batch consumer, on revoke and stop),
    # so usually nothing is read twice; in about one run in four a partition's last
    # batches are re-read by the next owner (open question, docs/agents.md). Copies are
    # identical and downstream is idempotent, which the session check below relies on.
    twice = sorted(where[0][:2] for where in copies.values() if len(where) > 1)
    print(f"read twice on hand-over: {len(twice)} records {twice[:5]}")
    final = _final_sessions(session_serde, sessions)
    emitted = {session_tuple(s) for s in final.values() if not s["user_id"].startswith("flush-")}
    assert emitted == reference, "sessions equal the offline reference across rebalances"
