"""An agent that meets a writer schema it has not seen while the schema registry is away
waits for the registry and goes on: the record is neither rejected nor lost, and the
worker does not stop."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from streamlearn.agents import STEPS
from streamlearn.runtime.worker import create_faust_app
from streamlearn.serde import AvroSerde, RegistryClient, frame
from streamlearn.serde.avro import value_subject
from streamlearn.serde.schemas import load_schema
from streamlearn.settings import Settings
from tests.agent_workers import read_topic
from tests.support import RegistryProcess, ordered_producer


def _event(number: int) -> dict[str, Any]:
    return {
        "event_id": f"9c1b7a52-52a9-4a5e-8d61-{number:012d}", "event_type": "page_view",
        "user_id": f"u-{number}", "session_hint": None, "client_ts": datetime.now(UTC),
        "received_ts": datetime.now(UTC), "url": "https://shop.example/p", "referrer": None,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "ip": "203.0.113.9", "app_version": "1", "properties": {}, "context": {},
    }  # fmt: skip


async def test_an_unseen_writer_schema_while_the_registry_is_away_waits_for_it(
    system_settings: Settings,
    start_registry: Callable[[str], RegistryProcess],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = system_settings.topic_prefix
    registry = start_registry(prefix)
    settings = system_settings.model_copy(
        update={"schema_registry_url": registry.url, "data_dir": tmp_path}
    )
    topic = prefix + "telemetry.events"
    # The producers' own client: what it learns is not the agent's.
    with RegistryClient(registry.url) as producers:
        first = AvroSerde.for_topic(producers, topic, "TelemetryEvent")
        # A newer writer: one more optional field (backward compatible).
        schema = load_schema("TelemetryEvent")
        extra = {"name": "extra", "type": ["null", "string"], "default": None}
        newer = dict(schema, fields=[*schema["fields"], extra])
        newer_id = producers.register(value_subject(topic), json.dumps(newer))
        assert newer_id != first.schema_id
        parsed = fastavro.parse_schema(newer)

        def newer_bytes(event: dict[str, Any]) -> bytes:
            from io import BytesIO

            body = BytesIO()
            fastavro.schemaless_writer(body, parsed, dict(event, extra="x"))
            return frame(newer_id, body.getvalue())

        producer = ordered_producer(settings.kafka_bootstrap)
        producer.produce(topic, key=b"u-1", value=first.encode(_event(1)))
        assert producer.flush(30) == 0
        runtime = create_faust_app(
            settings,
            [STEPS["preprocess"]],
            registry=RegistryClient(registry.url),
            data_dir=tmp_path / "faust",
        )
        await runtime.app.start()
        try:
            await asyncio.to_thread(
                read_topic, settings, "events.clean", lambda m: len(m) >= 1, 120
            )
            await asyncio.to_thread(registry.stop)
            producer.produce(topic, key=b"u-2", value=newer_bytes(_event(2)))
            producer.produce(topic, key=b"u-3", value=first.encode(_event(3)))
            assert producer.flush(30) == 0
            await asyncio.sleep(8)  # the agent meets the newer writer with no registry
            assert not runtime.app.should_stop, "the worker stopped"
            assert runtime.app.waiting_for == (
                f"the schema registry, for writer schema id {newer_id}"
            )  # what its readiness probe says (503)
            restarted = await asyncio.to_thread(
                RegistryProcess, settings.kafka_bootstrap, prefix, registry.port
            )
            try:
                began = time.monotonic()
                clean = await asyncio.to_thread(
                    read_topic, settings, "events.clean", lambda m: len(m) >= 3, 120
                )
                assert time.monotonic() - began < 120
            finally:
                await asyncio.to_thread(restarted.stop)
        finally:
            await runtime.app.stop()
    rejected = await asyncio.to_thread(read_topic, settings, "events.rejected", lambda m: False, 2)
    assert rejected == [], "nothing is rejected for the registry's absence"
    assert len(clean) == 3
    assert runtime.app.waiting_for is None
    waits = [r for r in caplog.records if "waiting for the schema registry" in r.getMessage()]
    assert len(waits) == 1, "said once, not once per retry"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
