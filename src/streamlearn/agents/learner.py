"""The learner agent: ``training.examples`` → ``model.state`` (and ``model.metrics``).

One :class:`OnlineLearner` per configured model. ``training.examples`` is keyed by model
name, so each model's examples are in one partition, read in order by one worker.

Exactly-once learning on an at-least-once stream: ``model.state``, not the consumer
group's committed offsets, says what a model has learned. After a start or a rebalance the
learners resume from the newest verified snapshots; a batch that starts beyond the offsets
recorded there (examples learned after the last snapshot, then lost with the process) makes
the agent seek back to them, and any example below them is skipped. A restarted learner
therefore ends with the same model, byte for byte, as one that never stopped. A graceful
stop publishes a last snapshot, so a restart re-reads nothing.

Snapshots are built in a thread (pickling a grown tree takes tens of ms); learning waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from faust.types import TP

from streamlearn.agents.app import AgentContext
from streamlearn.agents.batches import Deliveries
from streamlearn.agents.learning import OnlineLearner
from streamlearn.agents.model_state import read_model_state
from streamlearn.exceptions import ConfigurationError
from streamlearn.models.configured import configured_specs

AGENT = "learner"
CADENCE_CHECK_S = 0.5
log = logging.getLogger(__name__)


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    key = settings.model_signing_key
    if key is None:
        raise ConfigurationError("the learner signs snapshots: set STREAMLEARN_MODEL_SIGNING_KEY")
    learners = {
        name: OnlineLearner(spec, signing_key=key, signing_key_id=settings.model_signing_key_id)
        for name, spec in configured_specs(settings).items()
    }
    examples_serde = context.serde("training.examples", "TrainingExample")
    snapshot_serde = context.serde("model.state", "ModelSnapshot")
    metrics_serde = context.serde("model.metrics", "ModelMetrics")
    state_topic = context.topic_name("model.state")
    metrics_topic = context.topic_name("model.metrics")
    decode = context.decoder(AGENT)
    metrics = context.metrics
    for name, learner in learners.items():
        metrics.expose(
            f"streamlearn_learner_{name}_records",
            f"training.examples records read by the learner of {name}, by what became of them.",
            lambda learner=learner: learner.counters,  # type: ignore[misc]
        )
    resumed_generation: list[int | None] = [None]
    window_start = {name: datetime.now(UTC) for name in learners}
    turn = asyncio.Lock()

    async def resume() -> None:
        view = await asyncio.to_thread(read_model_state, settings, snapshot_serde, learners, key)
        for name, learner in learners.items():
            snapshot = view.newest.get(name)
            if snapshot is not None and int(snapshot["version"]) != learner.version:
                await asyncio.to_thread(learner.resume, snapshot)
                log.info("learner %s resumed from version %d", name, learner.version)
            # Numbered after anything on the topic, verified or not, so workers move on.
            learner.version = max(learner.version, view.highest_version.get(name, 0))
        for name, version, reason in view.rejected:
            metrics.rejected_snapshots.labels(model=name, reason=reason).inc()
            log.error("model.state holds a rejected snapshot %s v%d (%s)", name, version, reason)

    async def publish(name: str) -> None:
        learner = learners[name]
        created = datetime.now(UTC)
        snapshot = await asyncio.to_thread(learner.snapshot, created, time.monotonic())
        record = learner.metrics_record(window_start[name], created, created)
        window_start[name] = created
        await app.producer.send_and_wait(
            state_topic, name.encode(), snapshot_serde.encode(snapshot), None, None, None
        )
        await app.producer.send_and_wait(
            metrics_topic, name.encode(), metrics_serde.encode(record), None, None, None
        )
        metrics.snapshots.labels(model=name).inc()

    async def publish_due() -> None:
        now = time.monotonic()
        for name, learner in learners.items():
            if learner.snapshot_due(now):
                await publish(name)

    @app.batch_agent(context.raw_topic("training.examples"))
    async def learn(tp: TP, messages: list[Any]) -> Deliveries | None:
        async with turn:
            if resumed_generation[0] != app.consumer_generation_id:
                await resume()
                resumed_generation[0] = app.consumer_generation_id
            expected = [
                learner.next_offsets.get((tp.topic, tp.partition)) for learner in learners.values()
            ]
            start = min((offset for offset in expected if offset is not None), default=None)
            if start is not None and messages[0].offset > start:
                # Committed offsets passed a snapshot: go back to what the models have.
                metrics.learner_seeks.inc()
                log.warning("%s: batch starts at %d, models need %d: seeking back",
                            tp, messages[0].offset, start)  # fmt: skip
                await app.consumer.seek(tp, start)
                return None  # not acknowledged: read again from the seek
            outputs = app.batch_producer.batches()
            for message in messages:
                example = await decode(examples_serde, message, outputs)
                if example is None:
                    continue
                for learner in learners.values():
                    learner.learn(example, tp.topic, tp.partition, message.offset)
            await publish_due()
            return await outputs.send()

    @app.timer(CADENCE_CHECK_S)  # type: ignore[untyped-decorator]
    async def publish_on_time() -> None:
        async with turn:
            await publish_due()

    @app.on_before_shutdown.connect
    async def publish_last(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """A graceful stop publishes what was learned since the last snapshot (the
        producer is flushed after this signal)."""
        async with turn:
            for name, learner in learners.items():
                if learner.unpublished:
                    await publish(name)
