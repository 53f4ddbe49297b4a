"""The preprocess agent: ``telemetry.events`` → ``events.clean`` (and ``events.rejected``)."""

from __future__ import annotations

import faust

from streamlearn.agents.app import AgentContext
from streamlearn.agents.preprocessing import AGENT, Preprocessor

# Expiry scans the partition's ids; once per tenth of the window amortises the scan.
MIN_EXPIRE_EVERY_MS = 10_000


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    partitions = context.partitions_of("telemetry.events")
    source = context.raw_topic("telemetry.events")
    clean_topic = context.raw_topic("events.clean")
    # Co-partitioned with the source: an event id and a user always meet the same state.
    seen = app.Table("preprocess-seen", partitions=partitions, key_type=str)
    bot_state = app.Table("preprocess-bots", partitions=partitions, key_type=str)
    events_serde = context.serde("telemetry.events", "TelemetryEvent")
    clean_serde = context.serde("events.clean", "CleanEvent")
    reject = context.rejecter(AGENT)
    preprocessor = Preprocessor(settings, events_serde, seen, bot_state, context.metrics)
    expire_every_ms = max(MIN_EXPIRE_EVERY_MS, int(settings.dedup_window_s * 100))
    last_expiry: dict[int, int] = {}

    @app.agent(source, name=f"{settings.topic_prefix}preprocess")
    async def preprocess(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            result = preprocessor.process(
                message.topic, message.partition, message.offset, message.key, message.value
            )
            if result.clean is not None:
                await clean_topic.send(
                    key=result.clean["user_id"].encode(), value=clean_serde.encode(result.clean)
                )
                received_ms = int(result.clean["received_ts"].timestamp() * 1000)
                if received_ms - last_expiry.get(message.partition, 0) > expire_every_ms:
                    preprocessor.expire(message.partition, received_ms)
                    last_expiry[message.partition] = received_ms
            elif result.rejection is not None:
                await reject(message, result.rejection)
