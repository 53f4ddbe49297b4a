"""faust-streaming (on aiokafka) against the pinned broker: the reason the Kafka line is chosen.

An exactly-once agent with a changelog-backed table reads one topic and writes another;
a read_committed consumer sees every output exactly once, and faust created its own
internal changelog topic although the broker refuses to auto-create topics.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import faust
from confluent_kafka.admin import AdminClient

from tests.support import read_values


async def test_exactly_once_agent_with_table(
    kafka_bootstrap: str, new_topic: Callable[..., str], admin: AdminClient, tmp_path: Path
) -> None:
    source, sink = new_topic(suffix="src"), new_topic(suffix="dst")
    app_id = f"compat-{source[-8:]}"
    app = faust.App(
        app_id,
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=1,
        datadir=str(tmp_path),
        processing_guarantee="exactly_once",
    )
    source_topic = app.topic(source, value_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw")
    seen = app.Table("seen", default=int)

    @app.agent(source_topic)
    async def shout(stream: AsyncIterator[bytes]) -> None:
        async for value in stream:
            seen["count"] += 1
            await sink_topic.send(value=value.upper())

    await app.start()
    try:
        for i in range(10):
            await source_topic.send(value=b"event-%d" % i)
        received = await read_values(kafka_bootstrap, sink, 10)
    finally:
        await app.stop()

    assert sorted(received) == sorted(b"EVENT-%d" % i for i in range(10))
    assert seen["count"] == 10
    assert f"{app_id}-seen-changelog" in admin.list_topics(timeout=30).topics
