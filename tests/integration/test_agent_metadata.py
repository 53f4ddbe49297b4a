"""An agent worker whose group was assigned without one of its topics picks it up in seconds.

Faust's assignor leaves out a topic the leader's metadata does not list ("Ignoring missing
topic"), and aiokafka asks the group to rebalance only when a later metadata refresh shows
the topic. An agent started while the broker restarts can meet such metadata (the restarted
broker's first answers may not list its topics yet). With aiokafka's default refresh every
5 minutes, that agent was assigned nothing for minutes (it happened in the chaos test).

Reproduced here without a restart: the worker subscribes to a topic that does not exist yet
(the broker refuses to auto-create topics), then the topic is created and a record sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streamlearn.runtime.worker import agent_app
from streamlearn.settings import Settings

NOTICED_WITHIN_S = 60.0
"""Well above the runtime's metadata refresh and a rebalance, well below aiokafka's default
refresh (300 s)."""


async def test_a_topic_missing_from_the_assignment_is_picked_up_when_it_appears(
    kafka_settings: Settings,
    admin: AdminClient,
    unique_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    late = unique_name("late")
    app = agent_app(kafka_settings, unique_name("group"), tmp_path)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    @app.agent(app.topic(late, value_serializer="raw"))
    async def read(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            await received.put(value)

    await app.start()
    try:
        # The group has formed without the topic (Faust's own leader topic is assigned).
        async with asyncio.timeout(60):
            while app.rebalancing or not app.consumer.assignment():
                await asyncio.sleep(0.2)
        leader = f"{app.conf.id}-__assignor-__leader"
        assert {tp.topic for tp in app.consumer.assignment()} == {leader}
        futures = admin.create_topics([NewTopic(late, num_partitions=1, replication_factor=1)])
        await asyncio.to_thread(futures[late].result, 30)
        producer = Producer({"bootstrap.servers": kafka_settings.kafka_bootstrap})
        producer.produce(late, b"first")
        assert producer.flush(30) == 0
        async with asyncio.timeout(NOTICED_WITHIN_S):
            assert await received.get() == b"first"
    finally:
        await app.stop()
