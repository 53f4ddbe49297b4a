"""The simulator against a real collector and a real prediction worker on the test broker."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from streamlearn.collector.app import create_collector_app
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving import create_serving_app
from streamlearn.settings import Settings
from streamlearn.simulate import LoopOptions, TrafficConfig, run_simulation
from tests.support import read_values, serve_app


@pytest.fixture
def settings(system_settings: Settings) -> Settings:
    return system_settings.model_copy(
        update={
            "model_signing_key": SecretStr("simulate-test-key"),
            "models": ["ctr"],
            "collector_trust_forwarded_for": True,
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


async def test_simulated_traffic_reaches_kafka_and_the_summary_matches(
    settings: Settings, registry: RegistryClient
) -> None:
    collector, collector_url = await serve_app(create_collector_app(settings, registry))
    worker, worker_url = await serve_app(create_serving_app(settings, registry))
    config = TrafficConfig(
        rate=80, users=300, bot_share=0.1, malformed_share=0.05, duplicate_share=0.05, seed=7
    )
    options = LoopOptions(collector_url=collector_url, predict_url=worker_url, duration_s=5)
    try:
        summary = await run_simulation(config, options)
    finally:
        await worker.cleanup()
        await collector.cleanup()

    assert summary.collector_errors == summary.predict_errors == summary.dropped == 0
    assert summary.generated["page_view"] > 250
    assert summary.generated["malformed"] > 0
    assert summary.malformed_refused == summary.generated["malformed"]
    assert summary.refused == {"400": summary.generated["malformed"]}
    assert summary.actors["crawler"] > 0
    assert summary.actors["burst_bot"] > 0
    # No model is loaded: every answer is the fallback, and the loop still closes.
    assert summary.predictions > 0
    assert summary.degraded == {"no_model": summary.predictions}
    assert summary.impressions + summary.served_not_seen == summary.predictions
    assert summary.impressions > 0
    assert summary.clicks > 0
    assert summary.truth_auc_ceiling is not None
    assert summary.truth_auc_ceiling > 0.6

    events_sent = summary.generated["page_view"] + summary.generated["duplicate"]
    assert summary.sent["event"] == events_sent + summary.generated["malformed"]
    assert summary.accepted["event"] == events_sent
    feedback_accepted = sum(n for kind, n in summary.accepted.items() if kind != "event")
    assert summary.accepted["impression"] <= summary.impressions

    bootstrap, prefix = settings.kafka_bootstrap, settings.topic_prefix
    events = await read_values(bootstrap, prefix + "telemetry.events", events_sent, 30, 1.0)
    feedback = await read_values(
        bootstrap, prefix + "telemetry.feedback", feedback_accepted, 30, 1.0
    )
    assert len(events) == events_sent
    assert len(feedback) == feedback_accepted

    event_serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.events", "TelemetryEvent"
    )
    decoded = [event_serde.decode(value) for value in events]
    ids = [str(e["event_id"]) for e in decoded]
    assert len(ids) - len(set(ids)) == summary.generated["duplicate"]
    crawlers = [e for e in decoded if e["user_id"].startswith("crawler-")]
    assert crawlers
    assert all("bot" in e["user_agent"].lower() for e in crawlers)
    # The collector trusted X-Forwarded-For: each simulated user has its own IP.
    assert len({e["ip"] for e in decoded}) > 50
    late = [e for e in decoded if (e["received_ts"] - e["client_ts"]).total_seconds() > 15]
    assert len(late) >= summary.late - summary.generated["duplicate"]
    feedback_serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.feedback", "Feedback"
    )
    kinds = {feedback_serde.decode(value)["kind"] for value in feedback}
    assert {"impression", "click"} <= kinds


async def test_the_simulate_command_passes_the_doors_it_finds_in_its_settings(
    settings: Settings, registry: RegistryClient
) -> None:
    """With a write key on the collector and a token on the prediction API, `streamlearn
    simulate` run with the same settings got 401 for everything (it sent neither; only
    `up` did) and still exited 0: found by running it against a secured pair."""
    doors = {
        "STREAMLEARN_COLLECTOR_WRITE_KEYS": '{"wk-sim-1-0123456789": "shop"}',
        "STREAMLEARN_SERVE_API_TOKENS": '["tok-sim-1-0123456789"]',
    }
    secured = settings.model_copy(
        update={
            "collector_write_keys": {SecretStr("wk-sim-1-0123456789"): "shop"},
            "serve_api_tokens": [SecretStr("tok-sim-1-0123456789")],
        }
    )
    collector, collector_url = await serve_app(create_collector_app(secured, registry))
    worker, worker_url = await serve_app(create_serving_app(secured, registry))
    try:
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "streamlearn", "simulate", "--duration", "4", "--rate", "40",
            "--users", "100", "--collector-url", collector_url, "--predict-url", worker_url,
            "--json", env={**os.environ, **doors},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(command.communicate(), timeout=120)
    finally:
        await worker.cleanup()
        await collector.cleanup()
    assert command.returncode == 0, stderr.decode()
    summary = json.loads(stdout)
    assert summary["accepted"]["event"] > 50, summary
    assert summary["predictions"] > 0, summary
    assert "401" not in summary["refused"], summary
    assert summary["predict_errors"] == 0, summary
    for secret in ("wk-sim-1-0123456789", "tok-sim-1-0123456789"):
        assert secret not in stdout.decode() + stderr.decode()
