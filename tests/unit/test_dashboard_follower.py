"""The topic follower's handling of what it reads (with a stand-in consumer): decoded
batches go to the page, undecodable records are skipped and counted, and a record whose
schema the registry could not give is read again rather than lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import TopicPartition

from streamlearn.dashboard.follower import TopicFollower
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.state import Decoded, FollowStatus
from streamlearn.serde import DecodeError, RegistryUnavailableError
from streamlearn.settings import Settings


@dataclass
class Message:
    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes | None:
        return self._value


@dataclass
class Consumer:
    batches: list[list[Message]]
    seeks: list[tuple[str, int, int]] = field(default_factory=list)

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        return self.batches.pop(0) if self.batches else []

    def seek(self, partition: TopicPartition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))


class Decoders:
    def __init__(self, registry_down_at: set[tuple[int, int]]) -> None:
        self.logical = {"p.model.metrics": "model.metrics"}
        self.registry_down_at = registry_down_at

    def decode(self, topic: str, value: bytes, partition: int, offset: int) -> Decoded:
        if value == b"garbage":
            raise DecodeError("not Avro")
        if (partition, offset) in self.registry_down_at:
            raise RegistryUnavailableError("registry http://registry:8081 unreachable")
        return Decoded("model.metrics", {"offset": offset}, partition, offset)


def follower(decoders: Decoders) -> tuple[TopicFollower, list[list[Decoded]], list[FollowStatus]]:
    delivered: list[list[Decoded]] = []
    reports: list[FollowStatus] = []
    instance = TopicFollower(
        Settings(),
        decoders,  # type: ignore[arg-type]
        deliver=delivered.append,
        report=reports.append,
        metrics=DashboardMetrics(),
    )
    return instance, delivered, reports


def test_decoded_records_are_delivered_and_undecodable_ones_skipped() -> None:
    instance, delivered, _ = follower(Decoders(set()))
    topic = "p.model.metrics"
    consumer = Consumer([[Message(topic, 0, 0, b"a"), Message(topic, 0, 1, b"garbage"),
                          Message(topic, 0, 2, None), Message(topic, 1, 0, b"b")]])  # fmt: skip
    instance._consume(consumer)  # type: ignore[arg-type]
    assert [(d.partition, d.offset) for d in delivered[0]] == [(0, 0), (1, 0)]
    assert instance.metrics.undecodable.labels(topic="model.metrics")._value.get() == 1
    assert consumer.seeks == []


def test_a_partition_goes_back_to_a_record_the_registry_could_not_decode(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("streamlearn.dashboard.follower.REGISTRY_RETRY_S", 0.0)
    decoders = Decoders({(0, 1)})
    instance, delivered, reports = follower(decoders)
    topic = "p.model.metrics"
    consumer = Consumer([
        [Message(topic, 0, 0, b"a"), Message(topic, 0, 1, b"b"), Message(topic, 1, 5, b"c"),
         Message(topic, 0, 2, b"d")],
    ])  # fmt: skip
    instance._consume(consumer)  # type: ignore[arg-type]
    # Offset 2 of partition 0 waits for offset 1; partition 1 goes on.
    assert [(d.partition, d.offset) for d in delivered[0]] == [(0, 0), (1, 5)]
    assert consumer.seeks == [(topic, 0, 1)]
    assert reports[-1].error is not None
    assert "schema registry" in reports[-1].error
    decoders.registry_down_at.clear()
    consumer.batches = [[Message(topic, 0, 1, b"b"), Message(topic, 0, 2, b"d")]]
    instance._consume(consumer)  # type: ignore[arg-type]
    assert [(d.partition, d.offset) for d in delivered[1]] == [(0, 1), (0, 2)]
    assert reports[-1].error is None
