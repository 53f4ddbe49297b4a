#!/usr/bin/env python3
"""The preprocess work as a Quix Streams app: bench/ingest.py's "what users would pick instead".

Runs in bench/.venv-quix (see bench/setup-quix-venv). Same code per event as streamlearn's
agent — the ``TelemetryEvent`` decode, ``streamlearn.agents.preprocess.Preprocessor``
(dedup, bot rules, user agent, compliance) and the ``CleanEvent`` encode — on Quix's
consumer/producer loop, with the dedup and bot state in plain dicts per partition (Quix's
RocksDB state is keyed by the message key, not by event id; dicts favour Quix, which
makes the comparison conservative for us).

    bench/.venv-quix/bin/python bench/quix_preprocess.py BOOTSTRAP REGISTRY_URL SOURCE SINK COUNT
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from quixstreams import Application, message_context

from streamlearn.agents.preprocess import Preprocessor
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings


def main() -> int:
    bootstrap, registry_url, source, sink, count = sys.argv[1:6]
    registry = RegistryClient(registry_url)
    events = AvroSerde.for_topic(registry, source, "TelemetryEvent")
    clean = AvroSerde(registry, "CleanEvent", f"{sink}-value")
    preprocessor = Preprocessor(Settings(), AgentMetrics())
    state: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def preprocess(value: bytes, key: Any, timestamp: int, headers: Any) -> bytes | None:
        context = message_context()
        partition = context.partition
        seen, bots = state.setdefault(partition, ({}, {}))
        event = events.decode(value, topic=source, partition=partition, offset=context.offset)
        result = preprocessor.process(event, partition, context.offset, seen, bots)
        return clean.encode(result.clean) if result.clean is not None else None

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    input_topic = app.topic(source, key_deserializer="bytes", value_deserializer="bytes")
    output_topic = app.topic(sink, key_serializer="bytes", value_serializer="bytes")
    sdf = app.dataframe(input_topic)
    sdf = sdf.apply(preprocess, metadata=True).filter(lambda value: value is not None)
    sdf.to_topic(output_topic)
    app.run(count=int(count), timeout=30.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
