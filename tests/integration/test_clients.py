"""Both Kafka client libraries against the real broker, including transactions."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, Message, Producer


def _consume(bootstrap: str, topic: str, count: int, **config: str) -> list[Message]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "false",
            **config,
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    try:
        for _ in range(60):
            for message in consumer.consume(num_messages=count, timeout=0.5):
                assert message.error() is None, message.error()
                messages.append(message)
            if len(messages) >= count:
                break
    finally:
        consumer.close()
    return messages


def test_confluent_kafka_produce_and_consume(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=3)
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "enable.idempotence": True, "acks": "all"}
    )
    for i in range(30):
        producer.produce(topic, key=f"user-{i % 5}", value=f"event-{i}".encode())
    assert producer.flush(30) == 0
    messages = _consume(kafka_bootstrap, topic, 30)
    assert sorted(m.value() for m in messages) == sorted(f"event-{i}".encode() for i in range(30))
    # The same key always lands on the same partition.
    partitions_of = {}
    for message in messages:
        partitions_of.setdefault(message.key(), set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions_of.values())


async def test_aiokafka_produce_and_consume(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, key=b"k%d" % i, value=b"v%d" % i)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 20:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no records within 10 s"
            values += [record.value for records in batch.values() for record in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    assert sorted(values) == sorted(b"v%d" % i for i in range(20))


def test_transactions_commit_and_abort(kafka_bootstrap: str, new_topic: Callable[..., str]) -> None:
    topic = new_topic()
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"aborted-1")
    producer.produce(topic, value=b"aborted-2")
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, value=b"committed-1")
    producer.produce(topic, value=b"committed-2")
    producer.commit_transaction(30)

    committed = _consume(kafka_bootstrap, topic, 2, **{"isolation.level": "read_committed"})
    assert [m.value() for m in committed] == [b"committed-1", b"committed-2"]
    # read_uncommitted sees the aborted records too: they really were written, then aborted.
    everything = _consume(kafka_bootstrap, topic, 4, **{"isolation.level": "read_uncommitted"})
    assert [m.value() for m in everything] == [
        b"aborted-1",
        b"aborted-2",
        b"committed-1",
        b"committed-2",
    ]
