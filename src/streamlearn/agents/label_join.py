"""The label-join agent: ``telemetry.predictions`` + ``telemetry.feedback`` →
``training.examples`` (and residuals to ``model.metrics``).

Two batch agents, one per input topic, share one :class:`LabelJoiner` whose state is a
table keyed by request id. Both inputs are keyed by request id with murmur2, so a request's
prediction, its feedback and its state share a partition number. A timer moves the join's
clock (the wall clock: ``served_ts`` and ``received_ts`` are the system's own times) so
horizons close and negatives are emitted while traffic is quiet, and flushes residuals.

Examples are delivered before the state that says they were emitted is persisted, so a
crash re-emits rather than loses; the learner skips what it has learned (by offset) and a
redelivered example is identical. Residuals live in memory between flushes: a crash
loses at most one window of them, never an example.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from streamlearn.agents.app import AgentContext
from streamlearn.agents.batch_producer import OutputBatches
from streamlearn.agents.batches import BatchTable, Deliveries
from streamlearn.agents.label_joining import Example, LabelJoiner
from streamlearn.agents.residuals import ResidualAggregator
from streamlearn.models.configured import configured_specs

AGENT = "label-join"
CLOCK_INTERVAL_S = 1.0
RESIDUALS_EVERY_S = 10.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    partitions = context.partitions_of("telemetry.predictions")
    predictions_name = context.topic_name("telemetry.predictions")
    state = BatchTable(
        app.Table("label-join-requests", partitions=partitions, key_type=str, use_partitioner=True)
    )
    joiner = LabelJoiner.for_specs(
        configured_specs(settings),
        state,
        allowed_lateness_s=settings.label_allowed_lateness_s,
        retention_s=settings.dedup_window_s,
    )
    context.metrics.expose(
        "streamlearn_label_join_records",
        "Predictions and feedback read by label-join, by what became of them.",
        lambda: joiner.counters,
    )
    predictions_serde = context.serde("telemetry.predictions", "PredictionServed")
    feedback_serde = context.serde("telemetry.feedback", "Feedback")
    examples_serde = context.serde("training.examples", "TrainingExample")
    metrics_serde = context.serde("model.metrics", "ModelMetrics")
    examples_topic = context.topic_name("training.examples")
    metrics_topic = context.topic_name("model.metrics")
    decode = context.decoder(AGENT)
    residuals = ResidualAggregator(datetime.now(UTC))
    turn = asyncio.Lock()  # batches and the clock take turns over the shared state
    indexed_generation: list[int | None] = [None]

    def index_owned_state() -> bool:
        """After a rebalance (once recovery is done): forget requests of partitions this
        worker no longer owns and rebuild the join's due-time index. False meanwhile."""
        generation = app.consumer_generation_id
        if indexed_generation[0] == generation:
            return True
        if app.in_recovery:
            return False
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == predictions_name}
        state.forget_unowned(owned, partitions)
        joiner.reindex()
        indexed_generation[0] = generation
        return True

    async def emit_then_persist(examples: list[Example], outputs: OutputBatches) -> Deliveries:
        send_example = await outputs.to_topic(examples_topic)
        for example in examples:
            send_example(example["model_name"].encode(), examples_serde.encode(example))
            residuals.add(example)
        for delivery in await outputs.send():
            await delivery
        state_outputs = app.batch_producer.batches()
        await state.flush(state_outputs, None)
        return await state_outputs.send()

    def joining(
        serde: Any, on_record: Callable[[dict[str, Any]], list[Example]]
    ) -> Callable[[TP, list[Any]], Any]:
        async def handle(tp: TP, messages: list[Any]) -> Deliveries:
            outputs = app.batch_producer.batches()
            examples: list[Example] = []
            async with turn:
                index_owned_state()
                for message in messages:
                    record = await decode(serde, message, outputs)
                    if record is None:
                        continue
                    examples += on_record(record)
                examples += joiner.advance(_now_ms())
                return await emit_then_persist(examples, outputs)

        return handle

    app.batch_agent(context.raw_topic("telemetry.predictions"))(
        joining(predictions_serde, joiner.on_prediction)
    )
    app.batch_agent(context.raw_topic("telemetry.feedback"))(
        joining(feedback_serde, joiner.on_feedback)
    )

    @app.timer(CLOCK_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def close_horizons() -> None:
        async with turn:
            if not index_owned_state():
                return
            deliveries = await emit_then_persist(
                joiner.advance(_now_ms()), app.batch_producer.batches()
            )
        for delivery in deliveries:
            await delivery

    @app.timer(RESIDUALS_EVERY_S)  # type: ignore[untyped-decorator]
    async def publish_residuals() -> None:
        records = residuals.flush(datetime.now(UTC))
        if not records:
            return
        outputs = app.batch_producer.batches()
        send = await outputs.to_topic(metrics_topic)
        for record in records:
            send(record["model_name"].encode(), metrics_serde.encode(record))
        for delivery in await outputs.send():
            await delivery
