"""The ingest path on the real broker: preprocess and sessionise against known truth."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streamlearn.agents import PIPELINE_AGENTS, STEPS
from streamlearn.agents.sessions import retracted
from streamlearn.runtime.worker import create_faust_app
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests import ingest_dataset
from tests.agent_workers import Workers, read_topic
from tests.ingest_dataset import GAP_S, IngestDataset
from tests.support import (
    committed_to_end,
    flush_events,
    ordered_producer,
    reference_sessions,
    session_tuple,
)


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


def _flush(serde: AvroSerde, data: IngestDataset) -> list[tuple[bytes, bytes]]:
    """One event per partition a day later: every partition's watermark passes everything."""
    template = next(iter(data.clean_events.values()))
    later = template["client_ts"] + timedelta(days=1)
    return [(e["user_id"].encode(), serde.encode(e)) for e in flush_events(template, later)]


def _final_sessions(serde: AvroSerde, messages: list[Any]) -> dict[str, dict[str, Any]]:
    """The newest version of each session (a correction replaces what it corrects, a
    retraction, ``merged_into`` set, removes it)."""
    final: dict[str, dict[str, Any]] = {}
    for message in messages:
        session = serde.decode(message.value())
        final[session["session_id"]] = session
    return {k: s for k, s in final.items() if not retracted(s)}


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
    flush = _flush(events, data)
    await asyncio.to_thread(_produce, settings, data.records + flush)
    # A poison record straight into events.clean: sessionise must reject it, not crash.
    poison = ordered_producer(settings.kafka_bootstrap)
    poison.produce(prefix + "events.clean", key=b"human-0", value=b"not avro")
    poison.flush(30)

    runtime = create_faust_app(
        settings,
        [STEPS[name] for name in PIPELINE_AGENTS],
        registry=registry,
        data_dir=tmp_path / "faust",
    )
    app = runtime.app
    await app.start()
    try:
        expected_clean = len(data.clean_events) + len(flush) + 1  # + the poison record
        clean = await asyncio.to_thread(
            read_topic, settings, "events.clean", lambda m: len(m) >= expected_clean
        )
        rejected = await asyncio.to_thread(
            read_topic,
            settings,
            "events.rejected",
            lambda m: len(m) >= sum(data.malformed.values()) + 1,
        )
        truth = [dict(e, event_ts=e["client_ts"]) for e in data.clean_events.values()]
        reference = reference_sessions(truth, GAP_S)
        session_serde = AvroSerde.for_topic(registry, prefix + "events.sessions", "Session")
        sessions = await asyncio.to_thread(
            read_topic,
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
        assert record["value"] is not None or record["reason"] == "null_value"
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
    clean = read_topic(settings, "events.clean", lambda m: len(m) >= expected_clean, timeout_s=180)
    print(f"all clean after {time.monotonic() - began:.1f}s")
    truth = [dict(e, event_ts=e["client_ts"]) for e in data.clean_events.values()]
    reference = reference_sessions(truth, GAP_S)
    topic = settings.topic_prefix + "events.sessions"
    session_serde = AvroSerde.for_topic(registry, topic, "Session")
    sessions = read_topic(
        settings,
        "events.sessions",
        lambda m: (
            {session_tuple(s) for s in _final_sessions(session_serde, m).values()} >= reference
        ),
        timeout_s=180,
    )
    print(f"all sessions after {time.monotonic() - began:.1f}s")
    return clean, reference, session_serde, sessions


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
    flush = _flush(events, data)
    half = len(data.records) // 2
    # The first worker dies before its first commit with the whole first half behind it,
    # so the replay spans hours of event time: remember ids that long.
    worker = Workers(settings, STREAMLEARN_DEDUP_WINDOW_S=str(6 * 3600)).start

    began = time.monotonic()
    _produce(settings, data.records[:half])
    first = worker()
    try:
        read_topic(settings, "events.clean", lambda m: len(m) >= half // 4)
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


def test_rebalances_hand_partitions_over_without_loss_or_duplicates(
    settings: Settings, registry: RegistryClient
) -> None:
    """A second worker joins mid-stream, then the first is stopped with SIGTERM: both are
    rebalances, and each hands its partitions over with its batches' offsets committed."""
    prefix = settings.topic_prefix
    events = AvroSerde.for_topic(registry, prefix + "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=23, humans=60)
    flush = _flush(events, data)
    third = len(data.records) // 3
    workers = Workers(settings, STREAMLEARN_DEDUP_WINDOW_S=str(6 * 3600))
    worker = workers.start

    began = time.monotonic()
    _produce(settings, data.records[:third])
    first = worker()
    second: subprocess.Popen[bytes] | None = None
    try:
        read_topic(settings, "events.clean", lambda m: len(m) >= third // 4)
        _wait_until_committed(settings, "telemetry.events")
        print(f"committed after {time.monotonic() - began:.1f}s")
        second = worker()
        workers.wait_for_members(2)
        _produce(settings, data.records[third : 2 * third])
        read_topic(settings, "events.clean", lambda m: len(m) >= third)
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
