"""The sessionise agent: ``events.clean`` → ``events.sessions``.

A batch agent (agents/batches.py). Session state is a Faust table keyed by user id whose
changelog partition is murmur2 of the user id's bytes, the partition preprocess gives the
user's clean events, so the timer that closes sessions of quiet users can write it
outside a batch and the state still moves with the user's events on a rebalance. Each
worker sweeps only the partitions it owns (its table also holds standby copies).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.types import TP

from streamlearn.agents.app import AgentContext
from streamlearn.agents.batch_producer import OutputBatches
from streamlearn.agents.batches import BatchTable, Deliveries
from streamlearn.agents.sessions import Sessionizer, Step

AGENT = "sessionise"
SWEEP_INTERVAL_S = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    partitions = context.partitions_of("events.clean")
    source = context.raw_topic("events.clean")
    users = BatchTable(
        app.Table("sessionise-users", partitions=partitions, key_type=str, use_partitioner=True)
    )
    clean_serde = context.serde("events.clean", "CleanEvent")
    session_serde = context.serde("events.sessions", "Session")
    decode = context.decoder(AGENT)
    # Watermarks are per worker and rebuilt from the stream after a restart.
    sessionizer = Sessionizer(settings, users, {}, context.metrics)
    # The agent and the timer take turns: state changed by one is persisted (changelog)
    # only after its sessions were delivered, so the other must not flush it in between.
    # (Measured: without the lock a SIGKILL between a timer's flush and the agent's
    # delivery lost a correction.)
    turn = asyncio.Lock()

    sessions_topic = context.topic_name("events.sessions")

    async def emit_then_persist(steps: list[Step], outputs: OutputBatches) -> Deliveries:
        # Delivered first, state second: a crash in between re-emits, never loses.
        send_session = await outputs.to_topic(sessions_topic)
        for step in steps:
            sessionizer.commit(step)
            for session in step.emitted:
                send_session(session["user_id"].encode(), session_serde.encode(session))
        for delivery in await outputs.send():
            await delivery
        state = app.batch_producer.batches()
        await users.flush(state, None)
        return await state.send()

    @app.batch_agent(source)
    async def sessionise(tp: TP, messages: list[Any]) -> Deliveries:
        outputs = app.batch_producer.batches()
        steps: list[Step] = []
        async with turn:
            now_ms = _now_ms()
            for message in messages:
                clean = await decode(clean_serde, message, outputs)
                if clean is None:
                    continue
                step = sessionizer.process(clean, tp.partition, now_ms)
                # In memory now, so the batch's next event of this user sees it; the
                # changelog follows once the batch's sessions are delivered.
                sessionizer.commit(step)
                steps.append(step)
            return await emit_then_persist(steps, outputs)

    source_name = context.topic_name("events.clean")

    @app.timer(SWEEP_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def close_quiet_sessions() -> None:
        async with turn:
            owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == source_name}
            sessionizer.forget_partitions(owned)
            state_deliveries = await emit_then_persist(
                sessionizer.sweep(_now_ms(), owned), app.batch_producer.batches()
            )
        for delivery in state_deliveries:
            await delivery
