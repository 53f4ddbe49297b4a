"""Every producer of streamlearn puts a key on the partition Kafka's Java client would.

Agents keep state co-partitioned with their inputs: a request's prediction (produced by the
workers) and its feedback (collector, SDK) must land in the same partition number, or two
label-join workers never see both. The reference is Kafka's own code
(``Utils.murmur2`` in the pinned kafka-clients jar, run by ``java``); the producers are the
real client objects, configured as they configure themselves, producing to librdkafka's
in-process mock cluster (``test.mock.num.brokers``; its topics have 4 partitions).
"""

from __future__ import annotations

import random
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streamlearn.client import TelemetryClient
from streamlearn.collector.state import Collector
from streamlearn.kafka_clients import java_key_partition, key_partition
from streamlearn.kafka_local import load_lock
from streamlearn.kafka_local.jars import jar_dir
from streamlearn.kafka_local.java import find_java
from streamlearn.runtime.topic_writer import KeyPartitioner
from streamlearn.serde import InMemoryRegistry
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.telemetry import TelemetrySink
from streamlearn.settings import Settings

JAVA_SOURCE = Path(__file__).parents[1] / "java" / "KafkaPartitions.java"
MOCK_PARTITIONS = 4  # librdkafka's mock cluster creates topics with 4 partitions
COUNTS = (MOCK_PARTITIONS, 6, 7, 12)
MOCK = {"test.mock.num.brokers": 1, "log_level": 3}


def _keys() -> list[bytes]:
    """10,000 keys of the shapes streamlearn uses: request and event ids, user ids, model
    names, non-ASCII and long keys."""
    rng = random.Random(20261130)
    keys: list[bytes] = []
    for n in range(10_000):
        shape = n % 5
        if shape == 0:
            keys.append(str(uuid.UUID(int=rng.getrandbits(128))).encode())
        elif shape == 1:
            keys.append(f"u-{rng.randrange(10**9)}".encode())
        elif shape == 2:
            keys.append(f"ctr@arm-{n}".encode())
        elif shape == 3:
            keys.append(f"用户-{n}-ü".encode())
        else:
            keys.append(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300))))
    return keys


KEYS = _keys()


@pytest.fixture(scope="module")
def kafka_partitions() -> dict[int, list[int]]:
    """partition count → Kafka's partition of each of KEYS."""
    jars = jar_dir(Settings().cache_dir, load_lock())
    assert (jars / f"kafka-clients-{load_lock().kafka_version}.jar").exists(), (
        f"no kafka-clients jar in {jars}: ./scripts/bootstrap fetches the broker's jars"
    )
    result = subprocess.run(
        [str(find_java().executable), "-cp", f"{jars}/*", str(JAVA_SOURCE), *map(str, COUNTS)],
        input="\n".join(key.hex() for key in KEYS),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    rows = [list(map(int, line.split())) for line in result.stdout.splitlines()]
    assert len(rows) == len(KEYS)
    return {count: [row[i] for row in rows] for i, count in enumerate(COUNTS)}


def _delivered_partitions(producer: Producer) -> list[int]:
    """The partition librdkafka chose for each of KEYS, produced through ``producer``."""
    partitions: dict[bytes, int] = {}

    def report(error: Any, message: Any) -> None:
        assert error is None, error
        partitions[message.key()] = message.partition()

    for key in KEYS:
        producer.produce("partitioning", key=key, value=b"", on_delivery=report)
        producer.poll(0)
    assert producer.flush(30) == 0
    return [partitions[key] for key in KEYS]


def _collector() -> tuple[Producer, Callable[[], object]]:
    collector = Collector(Settings(), InMemoryRegistry(), producer_config=MOCK)
    return collector.producer._producer, collector.producer.close


def _sdk() -> tuple[Producer, Callable[[], object]]:
    client = TelemetryClient(
        Settings(), app_version="test", registry=InMemoryRegistry(), producer_config=MOCK
    )
    return client._producer, client.close


def _worker_telemetry() -> tuple[Producer, Callable[[], object]]:
    # The sink asks for reports of failed deliveries only; this test reads the partition
    # of each delivered record from its report (the partitioner stays the sink's own).
    reports = {**MOCK, "delivery.report.only.error": False}
    sink = TelemetrySink(Settings(), InMemoryRegistry(), ServingMetrics(), producer_config=reports)
    return sink._producer, lambda: None


@pytest.mark.parametrize(
    "make_producer", [_collector, _sdk, _worker_telemetry], ids=["collector", "sdk", "workers"]
)
def test_librdkafka_producers_partition_keys_like_kafka(
    make_producer: Callable[[], tuple[Producer, Callable[[], object]]],
    kafka_partitions: dict[int, list[int]],
) -> None:
    producer, close = make_producer()
    try:
        assert _delivered_partitions(producer) == kafka_partitions[MOCK_PARTITIONS]
    finally:
        close()


@pytest.mark.parametrize("count", COUNTS)
def test_the_agents_and_the_learner_partition_keys_like_kafka(
    count: int, kafka_partitions: dict[int, list[int]]
) -> None:
    # Every agent output, the learner's snapshots included, is placed by the runtime's
    # KeyPartitioner (runtime/topic_writer.py: TopicWriter).
    partition_of = KeyPartitioner(count)
    assert [partition_of(key) for key in KEYS] == kafka_partitions[count]
    assert [key_partition(key, count) for key in KEYS] == kafka_partitions[count]
    # Where the client has no murmur2 of its own (confluent-kafka before 2.13).
    assert [java_key_partition(key, count) for key in KEYS] == kafka_partitions[count]


def test_a_producer_config_cannot_choose_another_partitioner() -> None:
    from streamlearn.kafka_clients import producer_config

    config = producer_config(Settings(), partitioner="consistent_random")
    assert config["partitioner"] == "murmur2_random"
