"""The preprocess agent: ``telemetry.events`` → ``events.clean`` (and ``events.rejected``).

A batch agent (agents/batches.py): each partition batch runs through the pure
:class:`Preprocessor`, its outputs are sent as one batch, and each table key it changed is
written to the changelog once per batch.
"""

from __future__ import annotations

from typing import Any

from faust.types import TP

from streamlearn.agents.app import AgentContext
from streamlearn.agents.batches import BatchTable, Deliveries
from streamlearn.agents.preprocessing import AGENT, Preprocessor

# Expiry scans the partition's ids; once per tenth of the window amortises the scan.
MIN_EXPIRE_EVERY_MS = 10_000


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    partitions = context.partitions_of("telemetry.events")
    source = context.raw_topic("telemetry.events")
    # Co-partitioned with the source: an event id and a user always meet the same state.
    seen = BatchTable(app.Table("preprocess-seen", partitions=partitions, key_type=str))
    bot_state = BatchTable(app.Table("preprocess-bots", partitions=partitions, key_type=str))
    events_serde = context.serde("telemetry.events", "TelemetryEvent")
    clean_serde = context.serde("events.clean", "CleanEvent")
    reject = context.rejecter(AGENT)
    preprocessor = Preprocessor(settings, events_serde, seen, bot_state, context.metrics)
    expire_every_ms = max(MIN_EXPIRE_EVERY_MS, int(settings.dedup_window_s * 100))
    last_expiry: dict[int, int] = {}

    clean_topic = context.topic_name("events.clean")

    @app.batch_agent(source)
    async def preprocess(tp: TP, messages: list[Any]) -> Deliveries:
        partition = tp.partition
        outputs = app.batch_producer.batches()
        send_clean = await outputs.to_topic(clean_topic)
        newest_ms = 0
        for message in messages:
            result = preprocessor.process(
                message.topic, partition, message.offset, message.key, message.value
            )
            clean = result.clean
            if clean is not None:
                send_clean(clean["user_id"].encode(), clean_serde.encode(clean))
                newest_ms = max(newest_ms, int(clean["received_ts"].timestamp() * 1000))
            elif result.rejection is not None:
                await reject(message, result.rejection, outputs)
        if newest_ms - last_expiry.get(partition, 0) > expire_every_ms:
            preprocessor.expire(partition, newest_ms)
            last_expiry[partition] = newest_ms
        await seen.flush(outputs, partition)
        await bot_state.flush(outputs, partition)
        return await outputs.send()
