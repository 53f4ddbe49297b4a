"""The sessionise agent: ``events.clean`` → ``events.sessions``.

Session state is a Faust table keyed by user id and written through the producer's
partitioner (murmur2, like the producer of ``events.clean``), so the timer that closes
sessions of quiet users can update it outside stream iteration and the state still
lives in the partition of the user's events.
"""

from __future__ import annotations

import asyncio
import time

import faust

from streamlearn.agents.app import AgentContext
from streamlearn.agents.preprocessing import Rejection
from streamlearn.agents.sessions import Sessionizer, Step
from streamlearn.serde import DecodeError

AGENT = "sessionise"
SWEEP_INTERVAL_S = 1.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def register(context: AgentContext) -> None:
    app, settings = context.app, context.settings
    partitions = context.partitions_of("events.clean")
    source = context.raw_topic("events.clean")
    sessions_topic = context.raw_topic("events.sessions")
    users = app.Table("sessionise-users", partitions=partitions, key_type=str, use_partitioner=True)
    clean_serde = context.serde("events.clean", "CleanEvent")
    session_serde = context.serde("events.sessions", "Session")
    reject = context.rejecter(AGENT)
    # Watermarks are per worker and rebuilt from the stream after a restart.
    sessionizer = Sessionizer(settings, users, {}, context.metrics)
    # The agent and the timer take turns: a step mutates its user's state in place and
    # persists it only after its sessions were delivered, so no other step may persist
    # (or read) that state in between. (Measured: without the lock a SIGKILL between a
    # timer's commit and the agent's delivery lost a correction.)
    turn = asyncio.Lock()

    async def emit_then_commit(steps: list[Step]) -> None:
        # Delivered first, state second: a crash in between re-emits, never loses.
        pending = [
            await sessions_topic.send(
                key=session["user_id"].encode(), value=session_serde.encode(session)
            )
            for step in steps
            for session in step.emitted
        ]
        for delivery in pending:
            await delivery
        for step in steps:
            sessionizer.commit(step)

    @app.agent(source, name=f"{settings.topic_prefix}sessionise")
    async def sessionise(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            try:
                clean = clean_serde.decode(
                    message.value,
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                )
            except DecodeError as exc:
                context.metrics.rejected.labels(agent=AGENT, reason=exc.reason).inc()
                await reject(message, Rejection(exc.reason, str(exc), exc.schema_id))
                continue
            async with turn:
                step = sessionizer.process(clean, message.partition, _now_ms())
                await emit_then_commit([step])

    @app.timer(SWEEP_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def close_quiet_sessions() -> None:
        async with turn:
            await emit_then_commit(sessionizer.sweep(_now_ms()))
