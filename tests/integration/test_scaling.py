"""Agents scaled to two workers in one group give what one gives: every seen prediction
joined exactly once, sessions equal to the offline reference.

The label-join's inputs come from the real producers: the simulator's traffic through a
prediction worker (its telemetry to ``telemetry.predictions``) and the collector (feedback
to ``telemetry.feedback``). A request's prediction and its feedback meet only if both
producers put its id in the same partition.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from pydantic import SecretStr

from streamlearn.collector.app import create_collector_app
from streamlearn.kafka_clients import producer_config
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving import create_serving_app
from streamlearn.settings import Settings
from streamlearn.simulate import LoopOptions, TrafficConfig, run_simulation
from tests import ingest_dataset
from tests.agent_workers import Workers, read_topic, running
from tests.support import flush_events, reference_sessions, serve_app, session_tuple

HORIZON_S = 10.0
LATENESS_S = 2.0


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(
        update={
            "model_signing_key": SecretStr("integration-test-signing-key"),
            "models": ["ctr"],
            "collector_trust_forwarded_for": True,
            "label_horizon_s": HORIZON_S,
            "label_allowed_lateness_s": LATENESS_S,
            "session_idle_s": 1.0,
            "data_dir": tmp_path,
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


async def _simulate(settings: Settings, registry: RegistryClient) -> None:
    collector, collector_url = await serve_app(create_collector_app(settings, registry))
    worker, worker_url = await serve_app(create_serving_app(settings, registry))
    config = TrafficConfig(rate=60, users=300, bot_share=0.0, seed=11)
    options = LoopOptions(collector_url=collector_url, predict_url=worker_url, duration_s=8)
    try:
        summary = await run_simulation(config, options)
    finally:
        await worker.cleanup()
        await collector.cleanup()
    assert summary.predictions > 100
    assert summary.impressions > 50


def _decoded(
    settings: Settings, registry: RegistryClient, topic: str, schema: str
) -> list[dict[str, Any]]:
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + topic, schema)
    return [serde.decode(m.value()) for m in read_topic(settings, topic, lambda _: False, 5)]


async def test_two_label_join_workers_join_every_seen_prediction_exactly_once(
    settings: Settings, registry: RegistryClient
) -> None:
    workers = Workers(
        settings,
        only="label-join",
        group="label-join",
        STREAMLEARN_MODELS='["ctr"]',
        STREAMLEARN_LABEL_HORIZON_S=str(HORIZON_S),
        STREAMLEARN_LABEL_ALLOWED_LATENESS_S=str(LATENESS_S),
    )
    with running(workers, 2):
        await asyncio.to_thread(workers.wait_for_members, 2)
        await _simulate(settings, registry)
        predictions = _decoded(settings, registry, "telemetry.predictions", "PredictionServed")
        feedback = _decoded(settings, registry, "telemetry.feedback", "Feedback")
        served = {p["request_id"]: p["served_ts"] for p in predictions}
        horizon = timedelta(seconds=HORIZON_S)
        in_time = [f for f in feedback if f["received_ts"] <= served[f["request_id"]] + horizon]
        seen = {f["request_id"] for f in in_time if f["kind"] == "impression"}
        clicked = {f["request_id"] for f in in_time if f["kind"] == "click"} & seen
        # Every horizon closes on the feedback's event time, moved on by the wall clock
        # once the (live) partitions are quiet.
        serde = AvroSerde.for_topic(
            registry, settings.topic_prefix + "training.examples", "TrainingExample"
        )
        messages = await asyncio.to_thread(
            read_topic, settings, "training.examples", lambda m: len(m) >= len(seen), 120
        )
    examples = [serde.decode(m.value()) for m in messages]
    ids = [e["request_id"] for e in examples]
    assert len(ids) == len(set(ids)), "no prediction joined twice"
    assert set(ids) == seen, "every seen prediction joined"
    assert {e["request_id"] for e in examples if e["label"] == 1.0} == clicked
    print(f"{len(predictions)} predictions, {len(seen)} seen, {len(clicked)} clicked")


def _per_partition(messages: list[Any]) -> dict[int, int]:
    """How many of ``messages`` each partition holds (a partition no worker read shows as
    missing or short: in one CI run on 2026-12-03 partition 3 of 6 got no session in 180 s)."""
    return dict(sorted(Counter(message.partition() for message in messages).items()))


def test_two_preprocess_and_sessionise_workers_give_the_offline_sessions(
    settings: Settings, registry: RegistryClient
) -> None:
    settings = ingest_dataset.settings_for(settings)
    prefix = settings.topic_prefix
    events = AvroSerde.for_topic(registry, prefix + "telemetry.events", "TelemetryEvent")
    data = ingest_dataset.build(events, seed=31, humans=60)
    template = next(iter(data.clean_events.values()))
    later = template["client_ts"] + timedelta(days=1)
    flush = [(e["user_id"].encode(), events.encode(e)) for e in flush_events(template, later)]
    truth = [dict(e, event_ts=e["client_ts"]) for e in data.clean_events.values()]
    reference = reference_sessions(truth, ingest_dataset.GAP_S)
    sessions_serde = AvroSerde.for_topic(registry, prefix + "events.sessions", "Session")
    clean_serde = AvroSerde.for_topic(registry, prefix + "events.clean", "CleanEvent")

    def complete(messages: list[Any]) -> bool:
        final = {s["session_id"]: s for s in (sessions_serde.decode(m.value()) for m in messages)}
        return {session_tuple(s) for s in final.values()} >= reference

    workers = Workers(settings, only="preprocess,sessionise", group="ingest")
    with running(workers, 2):
        workers.wait_for_members(2)
        producer = Producer(producer_config(settings, **{"enable.idempotence": True}))
        for key, value in data.records + flush:
            producer.produce(prefix + "telemetry.events", key=key, value=value)
            producer.poll(0)
        assert producer.flush(30) == 0
        sessions = read_topic(settings, "events.sessions", complete, timeout_s=180)
        clean = read_topic(settings, "events.clean", lambda m: False, timeout_s=2)

    final = {s["session_id"]: s for s in (sessions_serde.decode(m.value()) for m in sessions)}
    emitted = {session_tuple(s) for s in final.values() if not s["user_id"].startswith("flush-")}
    assert emitted == reference, (
        "sessions equal the offline reference; records per partition (sessions, clean): "
        f"{_per_partition(sessions)}, {_per_partition(clean)}; users whose sessions are "
        f"missing: {sorted({t[0] for t in reference - emitted})}"
    )
    ids = [str(clean_serde.decode(m.value())["event_id"]) for m in clean]
    flush_ids = {str(events.decode(value)["event_id"]) for _, value in flush}
    assert sorted(ids) == sorted(set(data.clean_events) | flush_ids), "each clean event once"
