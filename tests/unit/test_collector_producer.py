"""The collector's producer: a 503 says what happened to the request's records.

Runs the real librdkafka client against its in-process mock cluster
(``test.mock.num.brokers``), so delivery reports and the local queue behave as with a
broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streamlearn.collector.producer import (
    AsyncProducer,
    DeliveryFailedError,
    NotSentError,
    QueueFullError,
)
from streamlearn.producer_watch import ProducerWatch
from streamlearn.settings import Settings

TOPIC = "collector-producer"


@pytest.fixture
def producer() -> Iterator[AsyncProducer]:
    # Records wait in the local queue for half a second: a second batch meets a full queue.
    producer = AsyncProducer(
        {
            "bootstrap.servers": "",
            "test.mock.num.brokers": 1,
            "log_level": 3,
            "linger.ms": 500,
            "queue.buffering.max.messages": 8,
        }
    )
    yield producer
    producer.close()


def _written(producer: AsyncProducer) -> int:
    """Records in the mock cluster's topic."""
    brokers = producer._producer.list_topics(timeout=5).brokers.values()
    consumer = Consumer(
        {"bootstrap.servers": ",".join(f"{b.host}:{b.port}" for b in brokers), "group.id": "x"}
    )
    try:
        partitions = consumer.list_topics(TOPIC, timeout=5).topics[TOPIC].partitions
        return sum(
            high - low
            for low, high in (
                consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=5)
                for p in partitions
            )
        )
    finally:
        consumer.close()


def _batch(size: int, tag: str) -> list[tuple[str, bytes, bytes]]:
    return [(TOPIC, f"{tag}-{i}".encode(), b"value") for i in range(size)]


def _loop_errors() -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
    return errors


async def test_a_batch_the_queue_cannot_take_whole_is_refused_and_nothing_of_it_written(
    producer: AsyncProducer,
) -> None:
    errors = _loop_errors()
    first = asyncio.create_task(producer.produce(_batch(5, "a")))
    await asyncio.sleep(0)  # the first batch is in the local queue, not yet sent
    with pytest.raises(QueueFullError):
        await producer.produce(_batch(5, "b"))
    await first
    await asyncio.sleep(0.2)  # reports of anything the refused batch might have sent
    assert _written(producer) == 5, "the refused batch wrote nothing"
    assert errors == []


async def test_a_cancelled_request_leaves_its_records_to_kafka_without_loop_errors(
    producer: AsyncProducer,
) -> None:
    errors = _loop_errors()
    confirmed: list[int] = []
    request = asyncio.create_task(producer.produce(_batch(4, "c"), on_confirmed=confirmed.append))
    await asyncio.sleep(0.05)
    request.cancel()  # the client went away while Kafka had the records
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(1.0)
    assert sorted(confirmed) == [0, 1, 2, 3], "each record that reached Kafka is counted"
    assert _written(producer) == 4
    assert errors == [], "no delivery report lands on a cancelled future"


async def test_a_record_librdkafka_refuses_to_take_is_a_delivery_failure_not_a_crash(
    producer: AsyncProducer,
) -> None:
    """librdkafka refuses at once a record over its ``message.max.bytes``: the exception
    went out of the handler as a 500, with the records before it already handed over.
    (The collector refuses such an item before producing anything; this is the backstop.)"""
    batch = [*_batch(2, "d"), (TOPIC, b"big", b"x" * 1_100_000)]
    with pytest.raises(DeliveryFailedError, match="1 of 3 not confirmed"):
        await producer.produce(batch)
    await asyncio.sleep(0.2)
    assert _written(producer) == 2, "the records before it are Kafka's"


async def test_once_every_record_is_confirmed_the_watch_sees_none_waiting() -> None:
    # librdkafka still counts a record in len(producer) until its delivery callback has
    # returned, and the loop may settle the report before then: the watch was told records
    # still waited, with no report to come, and after kafka_producer_stall_s of no traffic
    # /healthz failed and `up` killed the idle collector ("not ready for 120s").
    watch = ProducerWatch(Settings(kafka_producer_stall_s=60.0), [TOPIC], ask=lambda: None)
    producer = AsyncProducer(
        {"bootstrap.servers": "", "test.mock.num.brokers": 1, "log_level": 3, "linger.ms": 0},
        watch,
    )
    try:
        left_waiting = 0
        for index in range(200):
            await producer.produce(_batch(1, str(index)))
            await asyncio.sleep(0)  # the reports still on their way to the loop settle
            left_waiting += watch.waited_s() > 0
        assert left_waiting == 0, f"{left_waiting} of 200 confirmed requests left records waiting"
    finally:
        producer.close()


async def test_a_first_record_over_the_queues_bytes_is_refused_as_nothing_sent() -> None:
    """The queue's byte limit (``queue.buffering.max.kbytes``) refusing the first record: no
    record was handed to librdkafka, so none can be written; it was a DeliveryFailedError,
    and the collector's 503 said "partial" ("some may be written")."""
    producer = AsyncProducer(
        {"bootstrap.servers": "", "test.mock.num.brokers": 1, "log_level": 3,
         "linger.ms": 500, "queue.buffering.max.kbytes": 1}
    )  # fmt: skip
    try:
        with pytest.raises(QueueFullError, match="none of 2 sent"):
            await producer.produce([(TOPIC, b"k1", b"x" * 4096), (TOPIC, b"k2", b"x" * 4096)])
        await asyncio.sleep(0.2)
        assert _written(producer) == 0
    finally:
        producer.close()


async def test_a_first_record_librdkafka_refuses_at_once_is_refused_as_nothing_sent(
    producer: AsyncProducer,
) -> None:
    """Every record refused at once (the first over ``message.max.bytes``): nothing was
    handed over, which the collector can say for certain ("written": "none")."""
    batch = [(TOPIC, b"big", b"x" * 1_100_000), *_batch(2, "e")]
    with pytest.raises(NotSentError, match="none of 3 sent") as refused:
        await producer.produce(batch)
    assert not isinstance(refused.value, QueueFullError), "not the queue: Kafka refused it"
    await asyncio.sleep(0.2)
    assert _written(producer) == 0
