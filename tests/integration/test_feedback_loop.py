"""The feedback loop on the real broker: label-join and learner against a known click model."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from streamlearn.agents import STEPS
from streamlearn.models import get_spec, load_model
from streamlearn.models.configured import configured_spec
from streamlearn.models.online import OnlineLearner
from streamlearn.models.synthetic import ClickWorld, exact_auc
from streamlearn.runtime.step import FETCH_HOLD_MS
from streamlearn.runtime.worker import create_faust_app
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.support import click_examples, committed_to_end, end_offsets

HORIZON_S = 4.0
LATENESS_S = 1.0
REQUESTS = 8000
EVERY_MS = 4


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(
        update={
            "label_horizon_s": HORIZON_S,
            "label_allowed_lateness_s": LATENESS_S,
            "snapshot_every_examples": 1000,
            "snapshot_every_s": 2.0,
            "data_dir": tmp_path,
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def _produce(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    for key, value in records:
        producer.produce(settings.topic_prefix + topic, key=key, value=value)
    assert producer.flush(30) == 0


def _read_all(settings: Settings, topic: str, serde: AvroSerde) -> list[tuple[int, int, Any]]:
    """Every record of ``topic`` now: (partition, offset, decoded value), in offset order."""
    return [(p, o, value) for p, o, _, value in _read_keyed(settings, topic, serde)]


def _read_keyed(
    settings: Settings, topic: str, serde: AvroSerde
) -> list[tuple[int, int, bytes | None, Any]]:
    """Every record of ``topic`` now: (partition, offset, key, decoded value or None for a
    tombstone), in offset order."""
    name = settings.topic_prefix + topic
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 * 1024 * 1024,
            "max.partition.fetch.bytes": 16 * 1024 * 1024,
        }
    )
    try:
        partitions = list(consumer.list_topics(name, timeout=30).topics[name].partitions)
        ends = end_offsets(consumer, name, partitions)
        consumer.assign([TopicPartition(name, p, 0) for p in partitions if ends[p] > 0])
        records: list[tuple[int, int, bytes | None, Any]] = []
        remaining = {p for p in partitions if ends[p] > 0}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                assert message.error() is None
                value = message.value()
                decoded = None if value is None else serde.decode(value)
                records.append((message.partition(), message.offset(), message.key(), decoded))
                if message.offset() + 1 >= ends[message.partition()]:
                    remaining.discard(message.partition())
        assert not remaining, f"{name} not read to its end"
    finally:
        consumer.close()
    return sorted(records, key=lambda r: (r[0], r[1]))


def start_learner(settings: Settings, log: str, **env: str) -> subprocess.Popen[bytes]:
    """`streamlearn agents run --only learner` on ``settings``' broker, its output in
    ``log`` under the data directory; ``env``: more settings (``STREAMLEARN_...``)."""
    environment = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMLEARN_MODEL_SIGNING_KEY": "integration-test-signing-key",
        "STREAMLEARN_SNAPSHOT_EVERY_S": "600",
        "STREAMLEARN_CONSUMER_SESSION_TIMEOUT_S": "6",
        "STREAMLEARN_DATA_DIR": str(settings.data_dir),
        **env,
    }
    with (settings.data_dir / log).open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "agents", "run", "--only", "learner",
             "--group", "streamlearn-agents"],
            env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip


def _wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def _world_telemetry(
    start: datetime,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Any]]:
    """8,000 requests served over 32 s from ``start``; their feedback squeezed into the
    horizon (the world's clicks come 1 to 30 s after serving; here a tenth of that)."""
    world = ClickWorld(seed=7)
    predictions, feedback, requests = world.telemetry(REQUESTS, start, every_ms=EVERY_MS)
    served = {p["request_id"]: p["served_ts"] for p in predictions}
    for record in feedback:
        at = served[record["request_id"]]
        record["client_ts"] = at + (record["client_ts"] - at) / 10
        record["received_ts"] = at + (record["received_ts"] - at) / 10
    feedback.sort(key=lambda r: r["received_ts"])
    return predictions, feedback, requests


def _produce_in_real_time(
    settings: Settings, timeline: list[tuple[datetime, str, bytes, bytes]]
) -> None:
    """Each record when the wall clock reaches its time, as live apps would send them: the
    join's clock is the wall clock, and a burst would put every positive (known within
    seconds) before every negative (known at the horizon)."""
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random",
         "linger.ms": 5}
    )  # fmt: skip
    for at, topic, key, value in sorted(timeline, key=lambda item: item[0]):
        wait_s = (at - datetime.now(UTC)).total_seconds()
        if wait_s > 0:
            producer.flush(10)
            time.sleep(wait_s)
        producer.produce(settings.topic_prefix + topic, key=key, value=value)
        producer.poll(0)
    assert producer.flush(30) == 0


async def test_the_learner_learns_the_click_model_from_joined_feedback(
    settings: Settings, registry: RegistryClient
) -> None:
    prefix = settings.topic_prefix
    predictions_serde = AvroSerde.for_topic(
        registry, prefix + "telemetry.predictions", "PredictionServed"
    )
    feedback_serde = AvroSerde.for_topic(registry, prefix + "telemetry.feedback", "Feedback")
    snapshot_serde = AvroSerde.for_topic(registry, prefix + "model.state", "ModelSnapshot")
    examples_serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    predictions, feedback, requests = _world_telemetry(datetime.now(UTC) + timedelta(seconds=2))
    seen = {r["request_id"] for r in feedback if r["kind"] == "impression"}
    clicked = {r["request_id"] for r in feedback if r["kind"] == "click"}
    duplicate = feedback[len(feedback) // 2]  # an app retried one event: counted once

    runtime = create_faust_app(
        settings,
        [STEPS["label-join"], STEPS["learner"]],
        registry=registry,
        data_dir=settings.data_dir / "f",
    )
    app = runtime.app
    # The broker may hold this worker's fetches as long as both its steps let it, or as
    # long as a deployment's setting says (a worker made, not started).
    assert app.fetch_hold_ms == FETCH_HOLD_MS == 100
    unheld = create_faust_app(
        settings.model_copy(update={"agent_fetch_hold_ms": 0}),
        [STEPS["label-join"], STEPS["learner"]],
        registry=registry,
        data_dir=settings.data_dir / "unheld",
    )
    assert unheld.app.fetch_hold_ms is None
    await app.start()
    try:
        timeline = [
            (p["served_ts"], "telemetry.predictions", p["request_id"].encode(),
             predictions_serde.encode(p)) for p in predictions
        ] + [
            (f["received_ts"], "telemetry.feedback", f["request_id"].encode(),
             feedback_serde.encode(f)) for f in [*feedback, duplicate]
        ]  # fmt: skip
        await asyncio.to_thread(_produce_in_real_time, settings, timeline)

        def trained_all() -> list[Any]:
            snapshots = [s for _, _, s in _read_all(settings, "model.state", snapshot_serde)]
            done = snapshots and snapshots[-1]["trained_examples"] == len(seen)
            return snapshots if done else []

        snapshots = await asyncio.to_thread(
            _wait_for, trained_all, HORIZON_S + LATENESS_S + 60, "every seen request learned"
        )
        # Every unseen prediction is counted: as unseen when its horizon closes, or, read
        # after the feedback clock passed its horizon (a loaded machine reads one topic's
        # partitions ahead of the other's), as late. The last horizons close on the
        # idle timer, possibly after the last seen example was learned.
        count = runtime.metrics.registry.get_sample_value
        what = "streamlearn_label_join_records_total"
        unseen = REQUESTS - len(seen)
        await asyncio.to_thread(
            _wait_for,
            lambda: (
                (count(what, {"what": "unseen"}) or 0)
                + (count(what, {"what": "late_predictions"}) or 0)
                == unseen
            ),
            30,
            f"{unseen} unseen predictions counted",
        )
    finally:
        await app.stop()

    examples = [e for _, _, e in _read_all(settings, "training.examples", examples_serde)]
    labels = {e["request_id"]: e["label"] for e in examples}
    assert len(labels) == len(examples) == len(seen), "one example per seen request"
    assert {r for r, label in labels.items() if label == 1.0} == clicked & seen
    first = examples[0]
    assert first["label_definition"] == "click_within_30m"
    assert first["features"]["ctx.placement"]

    counters = runtime.metrics.registry.get_sample_value
    what = "streamlearn_label_join_records_total"
    assert counters(what, {"what": "unseen"}) > 0
    assert counters(what, {"what": "duplicate_feedback"}) == 1

    versions = [s["version"] for s in snapshots]
    assert versions == list(range(1, len(versions) + 1)), "versions count up from 1"
    assert [s["parent_version"] for s in snapshots] == [None, *versions[:-1]]
    assert len(versions) >= 3
    final = snapshots[-1]
    ceiling = exact_auc(
        [r.clicked for r, p in zip(requests, predictions, strict=True) if p["request_id"] in seen],
        [r.p_click for r, p in zip(requests, predictions, strict=True) if p["request_id"] in seen],
    )
    print(f"prequential AUC {final['metrics']['auc']:.3f}, true model's AUC {ceiling:.3f}")
    assert final["metrics"]["auc"] > 0.75
    loaded = load_model(
        final, settings.model_signing_key, specs={"ctr": configured_spec("ctr", settings)}
    )
    assert loaded.trained_examples == len(seen)


def _trained_once(settings: Settings, examples_serde: AvroSerde) -> dict[str, Any]:
    """The snapshot of a ``ctr`` model trained once on every example in the topic."""
    once = OnlineLearner(configured_spec("ctr", settings), signing_key="unused")
    topic = settings.topic_prefix + "training.examples"
    for partition, offset, example in _read_all(settings, "training.examples", examples_serde):
        once.learn(example, topic, partition, offset)
    return once.snapshot(datetime.now(UTC))


def _snapshot_every_6000(settings: Settings, log: str) -> subprocess.Popen[bytes]:
    return start_learner(settings, log, STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="6000")


def _learned_and_lost(
    settings: Settings, records: list[tuple[bytes, bytes]], snapshots: Callable[[], list[Any]]
) -> None:
    """A learner learns ``records`` (over 7,000) and is SIGKILLed: a snapshot every 6,000
    examples, so the first 7,000 make one and the rest are learned but in no snapshot
    when the process dies, their offsets committed."""
    _produce(settings, "training.examples", records[:7000])
    first = _snapshot_every_6000(settings, "learner-1.log")
    try:
        _wait_for(snapshots, 120, "the first snapshot")
        _produce(settings, "training.examples", records[7000:])
        _wait_for(
            lambda: committed_to_end(settings, "training.examples"), 60, "the offsets committed"
        )
        assert snapshots()[-1]["trained_examples"] < len(records), "learned, in no snapshot"
    finally:
        first.kill()
        first.wait()


def test_a_sigkilled_learner_resumes_to_the_model_trained_once(
    settings: Settings, registry: RegistryClient
) -> None:
    prefix = settings.topic_prefix
    examples_serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    snapshot_serde = AvroSerde.for_topic(registry, prefix + "model.state", "ModelSnapshot")
    examples = click_examples(20_000, seed=3)
    records = [(b"ctr", examples_serde.encode(e)) for e in examples]
    half = len(records) // 2

    def snapshots() -> list[Any]:
        return [s for _, _, s in _read_all(settings, "model.state", snapshot_serde)]

    def all_committed() -> bool:
        return committed_to_end(settings, "training.examples")

    _learned_and_lost(settings, records[:half], snapshots)
    _produce(settings, "training.examples", records[half:])
    second = _snapshot_every_6000(settings, "learner-2.log")
    try:
        _wait_for(all_committed, 180, "every example consumed after the restart")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, "SIGTERM stops the learner cleanly"
    log = (settings.data_dir / "learner-2.log").read_text()
    assert "seeking back" in log, "the restart went back to the snapshot's offsets"
    published = [s for s in snapshots() if s["trained_examples"] == len(examples)]
    assert len(published) == 1, "a graceful stop publishes what was learned since"
    final = published[0]
    all_versions = [s["version"] for s in snapshots()]
    assert all_versions == sorted(set(all_versions)), "no version published twice"
    assert final["parent_version"] == final["version"] - 1

    reference = _trained_once(settings, examples_serde)
    assert final["payload"] == reference["payload"], "byte-identical to a model trained once"
    assert get_spec("ctr").name == final["model_name"]


def test_a_learner_resumed_on_a_quiet_topic_learns_again_what_it_lost(
    settings: Settings, registry: RegistryClient
) -> None:
    """Killed after learning examples no snapshot holds, then restarted with no new
    example coming: it seeks back to the snapshot's offsets at once, and its model is
    again the one trained on every example. It used to seek back only when a batch came,
    so on a quiet topic it sat on the older model (and a graceful stop published nothing
    newer) until the next example."""
    prefix = settings.topic_prefix
    examples_serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    snapshot_serde = AvroSerde.for_topic(registry, prefix + "model.state", "ModelSnapshot")
    examples = click_examples(9_000, seed=4)
    records = [(b"ctr", examples_serde.encode(e)) for e in examples]

    def snapshots() -> list[Any]:
        return [s for _, _, s in _read_all(settings, "model.state", snapshot_serde)]

    _learned_and_lost(settings, records, snapshots)
    lost = snapshots()[-1]
    second = start_learner(settings, "learner-2.log", STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="1000")
    try:
        # Every 1,000 examples: relearning what was lost publishes at least once.
        _wait_for(lambda: snapshots()[-1]["version"] > lost["version"], 120, "a snapshot, none new")
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, "SIGTERM stops the learner cleanly"
    log = (settings.data_dir / "learner-2.log").read_text()
    assert "reading from 9000, learner needs" in log, log[-2000:]
    relearned = [s for s in snapshots() if s["version"] > lost["version"]]
    assert relearned[0]["parent_version"] == lost["version"]
    final = relearned[-1]  # what a graceful stop publishes of what was learned since
    assert final["trained_examples"] == len(examples)
    assert final["payload"] == _trained_once(settings, examples_serde)["payload"]
