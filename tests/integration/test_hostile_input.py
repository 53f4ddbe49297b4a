"""Hostile records on every agent's input topics: each is rejected with its reason, bytes
intact, counted, and the agents go on with the records after it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from streamlearn.agents import PIPELINE_AGENTS, STEPS
from streamlearn.kafka_clients import key_partition
from streamlearn.models.synthetic import ClickWorld
from streamlearn.runtime.worker import create_faust_app
from streamlearn.serde import AvroSerde, RegistryClient, frame
from streamlearn.settings import Settings
from tests.agent_workers import read_topic
from tests.support import committed_to_end, ordered_producer

# Input topic → (its schema, the agent reading it).
INPUTS = {
    "telemetry.events": ("TelemetryEvent", "preprocess"),
    "events.clean": ("CleanEvent", "sessionise"),
    "telemetry.predictions": ("PredictionServed", "label-join"),
    "telemetry.feedback": ("Feedback", "label-join"),
    "training.examples": ("TrainingExample", "learner"),
}
OVERSIZED = 900 * 1024  # under the broker's default 1 MiB record limit


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def _samples(registry: RegistryClient, prefix: str) -> dict[str, tuple[AvroSerde, dict[str, Any]]]:
    """A valid record of every input topic, with the topic's serde."""
    world = ClickWorld(seed=5)
    predictions, feedback, _ = world.telemetry(20, datetime.now(UTC), seen_fraction=1.0)
    example = world.training_examples(1)[0]
    event = {
        "event_id": "9c1b7a52-52a9-4a5e-8d61-3a1f0a6b2c11", "event_type": "page_view",
        "user_id": "u-1", "session_hint": None, "client_ts": datetime.now(UTC),
        "received_ts": datetime.now(UTC), "url": "https://shop.example/p", "referrer": None,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "ip": "203.0.113.9", "app_version": "1", "properties": {}, "context": {},
    }  # fmt: skip
    values = {
        "telemetry.events": event,
        "telemetry.predictions": predictions[0],
        "telemetry.feedback": feedback[0],
        "training.examples": example,
    }
    return {
        topic: (AvroSerde.for_topic(registry, prefix + topic, schema), values[topic])
        for topic, (schema, _) in INPUTS.items()
        if topic in values
    }


def _poison(
    topic: str, samples: dict[str, tuple[AvroSerde, dict[str, Any]]]
) -> list[tuple[str, bytes]]:
    """(expected reason, bytes) of each hostile record for ``topic``."""
    own = samples.get(topic) or samples["telemetry.events"]
    valid = own[0].encode(own[1]) if topic in samples else None
    schema_id = own[0].schema_id if topic in samples else 1
    # Valid Avro of another record type, framed with that type's (registered) schema id.
    other = "telemetry.predictions" if topic == "telemetry.feedback" else "telemetry.feedback"
    wrong = samples[other][0].encode(samples[other][1])
    records = [
        ("bad_magic_byte", b"\x07" + os.urandom(63)),
        ("unknown_schema_id", frame(2_000_000_000, os.urandom(32))),
        ("unresolvable_schema", wrong),
        ("*", frame(schema_id, os.urandom(OVERSIZED))),
    ]
    if valid is not None:
        records.append(("truncated_body", valid[: len(valid) // 2]))
    return records


async def _gone_past(settings: Settings, topics: Iterable[str], failure: str) -> None:
    """Until every partition of ``topics`` is committed to its end (at most a minute)."""
    deadline = time.monotonic() + 60

    def all_committed() -> bool:
        return all(committed_to_end(settings, topic) for topic in topics)

    while not await asyncio.to_thread(all_committed):
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.5)


async def test_every_agent_rejects_hostile_records_with_their_reason_and_goes_on(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    prefix = settings.topic_prefix
    samples = _samples(registry, prefix)
    producer = ordered_producer(settings.kafka_bootstrap, **{"message.max.bytes": 2 * OVERSIZED})
    sent: dict[str, list[tuple[str, bytes]]] = {}
    for topic in INPUTS:
        sent[topic] = _poison(topic, samples)
        for _, value in sent[topic]:
            producer.produce(prefix + topic, key=b"hostile", value=value, partition=0)
        if topic in samples:  # then a valid record, which must still be handled
            serde, value = samples[topic]
            producer.produce(prefix + topic, key=b"hostile", value=serde.encode(value), partition=0)
    assert producer.flush(30) == 0
    expected = sum(len(records) for records in sent.values())

    runtime = create_faust_app(
        settings,
        [STEPS[name] for name in PIPELINE_AGENTS],
        registry=registry,
        data_dir=tmp_path / "faust",
    )
    await runtime.app.start()
    try:
        rejected = await asyncio.to_thread(
            read_topic, settings, "events.rejected", lambda m: len(m) >= expected, 120
        )
        await _gone_past(settings, INPUTS, "the agents did not go on past the records")
        assert not runtime.app.should_stop, "the worker is still running"
    finally:
        await runtime.app.stop()

    serde = AvroSerde.for_topic(registry, prefix + "events.rejected", "RejectedRecord")
    records = [serde.decode(m.value()) for m in rejected]
    assert len(records) == expected, "each hostile record rejected once"
    metrics = runtime.metrics
    for topic, poison in sent.items():
        agent = INPUTS[topic][1]
        got = [r for r in records if r["source_topic"] == prefix + topic]
        assert [r["value"] for r in got] == [value for _, value in poison], "bytes intact"
        assert {r["agent"] for r in got} == {agent}
        for (reason, _), record in zip(poison, got, strict=True):
            assert reason in ("*", record["reason"]), (topic, record["reason"], record["detail"])
            assert record["detail"], "a reason a person can read"
        for reason in {r["reason"] for r in got}:
            counted = metrics.value(metrics.rejected, agent=agent, reason=reason)
            assert counted >= sum(1 for r in got if r["reason"] == reason)


def _assert_stamped_by_the_broker(settings: Settings, topic: str) -> None:
    """The topology's ``topic`` has the broker stamp each record (LogAppendTime)."""
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topic_prefix + topic)
    [described] = admin.describe_configs([resource]).values()
    assert described.result(timeout=30)["message.timestamp.type"].value == "LogAppendTime"


async def test_an_event_from_a_host_whose_clock_runs_ahead_is_rejected_by_the_brokers_time(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    """telemetry.events is stamped by the broker (LogAppendTime, from the topology): an
    event whose received_ts is 30 days after that is rejected naming why, and the events
    after it are cleaned (taken as time, it made sessionise expire them all)."""
    prefix = settings.topic_prefix
    topic = prefix + "telemetry.events"
    _assert_stamped_by_the_broker(settings, "telemetry.events")

    serde, event = _samples(registry, prefix)["telemetry.events"]
    ahead = dict(event, event_id="0b5e7f4c-9a57-4d0e-b7c3-9f2c1d6b8a01", user_id="u-ahead",
                 received_ts=datetime.now(UTC) + timedelta(days=30))  # fmt: skip
    producer = ordered_producer(settings.kafka_bootstrap)
    for value in (ahead, event):
        producer.produce(topic, key=b"u", value=serde.encode(value), partition=1)
    assert producer.flush(30) == 0
    runtime = create_faust_app(
        settings, [STEPS["preprocess"]], registry=registry, data_dir=tmp_path / "faust"
    )
    await runtime.app.start()
    try:
        rejected = await asyncio.to_thread(
            read_topic, settings, "events.rejected", lambda m: len(m) >= 1, 120
        )
        clean = await asyncio.to_thread(
            read_topic, settings, "events.clean", lambda m: len(m) >= 1, 120
        )
    finally:
        await runtime.app.stop()
    decode = AvroSerde.for_topic(registry, prefix + "events.rejected", "RejectedRecord").decode
    [record] = [decode(m.value()) for m in rejected]
    assert record["reason"] == "invalid_field"
    assert "after Kafka received the record" in record["detail"]
    clean_serde = AvroSerde.for_topic(registry, prefix + "events.clean", "CleanEvent")
    assert [str(clean_serde.decode(m.value())["event_id"]) for m in clean] == [event["event_id"]]


async def test_feedback_from_a_host_whose_clock_runs_ahead_is_placed_at_the_brokers_time(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    """telemetry.feedback is stamped by the broker too: a feedback whose received_ts is a
    day after that (a TelemetryClient on a host whose clock runs ahead) no longer moves the
    partition's time a day on, which closed every open horizon (impressions became
    negatives) and made the clicks read after it late."""
    prefix = settings.topic_prefix
    _assert_stamped_by_the_broker(settings, "telemetry.feedback")

    samples = _samples(registry, prefix)
    prediction_serde, prediction = samples["telemetry.predictions"]
    feedback_serde, template = samples["telemetry.feedback"]
    now = datetime.now(UTC)

    def feedback(request_id: str, kind: str, number: int, received: datetime) -> dict[str, Any]:
        event_id = f"6f1c2d3e-4b5a-4c6d-8e7f-{number:012d}"
        return dict(template, request_id=request_id, kind=kind, value=None, client_ts=received,
                    received_ts=received, event_id=event_id)  # fmt: skip

    records = [
        ("telemetry.predictions", prediction_serde.encode(dict(prediction, request_id=r,
                                                               served_ts=now)))
        for r in ("r-1", "r-2")
    ] + [
        ("telemetry.feedback", feedback_serde.encode(record))
        for record in (
            feedback("r-1", "impression", 1, now),
            feedback("r-2", "impression", 2, now + timedelta(days=1)),
            feedback("r-1", "click", 3, now + timedelta(seconds=1)),
        )
    ]  # fmt: skip
    producer = ordered_producer(settings.kafka_bootstrap)
    for topic, value in records:  # one partition: the same join clock
        producer.produce(prefix + topic, key=b"r", value=value, partition=1)
        producer.flush(30)
    runtime = create_faust_app(
        settings, [STEPS["label-join"]], registry=registry, data_dir=tmp_path / "faust"
    )
    await runtime.app.start()
    try:
        examples = await asyncio.to_thread(
            read_topic, settings, "training.examples", lambda m: len(m) >= 1, 120
        )
    finally:
        await runtime.app.stop()
    serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    first = serde.decode(examples[0].value())
    assert (first["request_id"], first["label"]) == ("r-1", 1.0)


async def test_a_prediction_from_a_worker_whose_clock_runs_ahead_is_placed_at_the_brokers_time(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    """telemetry.predictions is stamped by the broker: one prediction whose served_ts is two
    hours after that (a worker whose clock runs ahead) no longer moves its partition's
    predictions time two hours on, which orphaned every feedback waiting for its
    prediction (a new user got no training example at all)."""
    prefix = settings.topic_prefix
    _assert_stamped_by_the_broker(settings, "telemetry.predictions")

    samples = _samples(registry, prefix)
    prediction_serde, prediction = samples["telemetry.predictions"]
    feedback_serde, template = samples["telemetry.feedback"]
    now = datetime.now(UTC)

    def served(request_id: str, at: datetime) -> bytes:
        return prediction_serde.encode(dict(prediction, request_id=request_id, served_ts=at))

    def feedback(request_id: str, kind: str, number: int) -> bytes:
        event_id = f"7a1c2d3e-4b5a-4c6d-8e7f-{number:012d}"
        return feedback_serde.encode(dict(template, request_id=request_id, kind=kind,
                                          value=None, client_ts=now, received_ts=now,
                                          event_id=event_id))  # fmt: skip

    producer = ordered_producer(settings.kafka_bootstrap)

    def send(topic: str, *values: bytes) -> None:  # one partition: the same join clock
        for value in values:
            producer.produce(prefix + topic, key=b"r", value=value, partition=1)
        producer.flush(30)

    runtime = create_faust_app(
        settings, [STEPS["label-join"]], registry=registry, data_dir=tmp_path / "faust"
    )
    await runtime.app.start()
    try:
        # The feedback is read first, and waits: its prediction is still in the worker's
        # telemetry buffer when a worker two hours fast sends one.
        send("telemetry.feedback", feedback("r-1", "impression", 1), feedback("r-1", "click", 2))
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(committed_to_end, settings, "telemetry.feedback"):
            assert time.monotonic() < deadline, "label-join did not read the feedback"
            await asyncio.sleep(0.2)
        send("telemetry.predictions", served("r-fast", now + timedelta(hours=2)))
        send("telemetry.predictions", served("r-1", now))
        examples = await asyncio.to_thread(
            read_topic, settings, "training.examples", lambda m: len(m) >= 1, 120
        )
    finally:
        await runtime.app.stop()
    serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    first = serde.decode(examples[0].value())
    assert (first["request_id"], first["label"]) == ("r-1", 1.0)


async def test_a_valid_event_whose_clean_copy_is_over_the_limit_is_rejected_not_a_stop(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    """Found by a new user: a valid event of 1,048,408 bytes (under telemetry.events'
    limit) made a clean copy a few bytes larger, which the broker refused: preprocess
    stopped, and again at every restart, the partition read no further."""
    import base64

    prefix = settings.topic_prefix
    serde, event = _samples(registry, prefix)["telemetry.events"]
    event = {
        **event,
        "user_agent": None,
        "ip": None,
        "event_id": "0c1b7a52-52a9-4a5e-8d61-3a1f0a6b2c12",
    }
    base = len(serde.encode(event))
    big = {**event, "url": "https://shop.example/" + base64.b64encode(os.urandom(800_000)).decode()}
    big["url"] = big["url"][: len(big["url"]) - (len(serde.encode(big)) - 1_048_400)]
    value = serde.encode(big)
    assert 1_048_390 <= len(value) <= 1_048_400  # (the length varint may take a byte less)
    assert len(value) > base
    producer = ordered_producer(settings.kafka_bootstrap, **{"message.max.bytes": 2 * 1024 * 1024})
    producer.produce(prefix + "telemetry.events", key=b"big", value=value, partition=0)
    after = {**event, "event_id": "1c1b7a52-52a9-4a5e-8d61-3a1f0a6b2c13", "user_id": "u-after"}
    producer.produce(
        prefix + "telemetry.events", key=b"big", value=serde.encode(after), partition=0
    )
    assert producer.flush(30) == 0

    runtime = create_faust_app(settings, [STEPS["preprocess"]], registry=registry,
                               data_dir=tmp_path / "faust")  # fmt: skip
    await runtime.app.start()
    try:
        rejected = await asyncio.to_thread(read_topic, settings, "events.rejected",
                                           lambda m: len(m) >= 1, 120)  # fmt: skip
        clean = await asyncio.to_thread(
            read_topic, settings, "events.clean",
            lambda m: any(b"u-after" in (r.value() or b"") for r in m), 120,
        )  # fmt: skip
        await _gone_past(settings, ["telemetry.events"], "preprocess did not go on past it")
        assert not runtime.app.should_stop, "the worker is still running"
    finally:
        await runtime.app.stop()
    rejected_serde = AvroSerde.for_topic(registry, prefix + "events.rejected", "RejectedRecord")
    [record] = [rejected_serde.decode(m.value()) for m in rejected]
    assert record["reason"] == "output_too_large"
    assert record["source_topic"] == prefix + "events.clean"
    assert "over the topic's limit" in record["detail"]
    assert record["value"] is not None
    assert len(record["value"]) > len(value)
    assert not [m for m in clean if m.key() == b"big" and b"u-after" not in m.value()]


async def test_a_run_of_undecodable_examples_longer_than_a_fetch_is_rejected_once_each(
    settings: Settings, registry: RegistryClient, tmp_path: Path
) -> None:
    """The learner sought back to the first example the runtime had rejected (it never
    reached the learner, whose state still needed it) before every later batch: each such
    record was rejected twice, and a run of them longer than one fetch (4 MiB) forever (a
    probe: 8,000 records of 1 KB of garbage on ctr's partition gave 323,000 rejections in
    30 s, and ctr learned nothing after them)."""
    prefix = settings.topic_prefix
    serde, example = _samples(registry, prefix)["training.examples"]
    topic = prefix + "training.examples"
    producer = ordered_producer(settings.kafka_bootstrap)
    partitions = len(producer.list_topics(topic, timeout=30).topics[topic].partitions)
    partition = key_partition(b"ctr", partitions)  # where the learner reads ctr's examples
    garbage = 6_000  # 6 MB: more than one fetch
    for n in range(garbage):
        producer.produce(topic, key=b"ctr", value=b"garbage %05d " % n + b"x" * 1_000,
                         partition=partition)  # fmt: skip
        producer.poll(0)
    after = {**example, "model_name": "ctr", "request_id": "r-after"}
    producer.produce(topic, key=b"ctr", value=serde.encode(after), partition=partition)
    assert producer.flush(60) == 0

    runtime = create_faust_app(settings, [STEPS["learner"]], registry=registry,
                               data_dir=tmp_path / "faust")  # fmt: skip
    await runtime.app.start()
    try:
        await _gone_past(settings, ["training.examples"], "the learner did not go past them")
        await asyncio.sleep(3)  # a learner seeking back would be rejecting them again
        rejected = await asyncio.to_thread(read_topic, settings, "events.rejected",
                                           lambda m: len(m) >= garbage, 60)  # fmt: skip
        metrics = runtime.metrics
        counted = metrics.value(metrics.rejected, agent="learner", reason="bad_magic_byte")
        seeks = metrics.value(metrics.resume_seeks, agent="learner")
        stopped = runtime.app.should_stop
    finally:
        await runtime.app.stop()
    assert not stopped, "the worker is still running"
    assert (len(rejected), counted) == (garbage, garbage), "each rejected once"
    assert seeks == 0
