"""What a worker compares to notice that a topic of its grew partitions
(runtime/partition_growth.py; the real broker's case is in
tests/integration/test_partition_growth.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamlearn.runtime.partition_growth import (
    PARTITIONS_GREW_EXIT,
    Growth,
    PartitionGrowthWatch,
    grown_topics,
    stop_message,
)
from streamlearn.settings import Settings


def test_only_a_topic_with_more_partitions_than_at_start_has_grown() -> None:
    started = {"p.telemetry.events": 6, "p.events.clean": 6, "p.events.rejected": 3}
    now = {"p.telemetry.events": 6, "p.events.clean": 8}  # rejected: not seen now
    assert grown_topics(started, now, frozenset({"p.telemetry.events"})) == [
        Growth("p.events.clean", "writes", 6, 8)
    ]
    assert grown_topics(started, {"p.telemetry.events": 12}, frozenset({"p.telemetry.events"})) == [
        Growth("p.telemetry.events", "reads", 6, 12)
    ]


def test_the_stop_names_the_topic_the_counts_and_the_exit_code() -> None:
    message = stop_message([Growth("p.events.clean", "writes", 6, 8)])
    assert message.startswith(
        "topic p.events.clean, which this worker writes, has 8 partitions; it started with 6: "
        f"stopping (exit code {PARTITIONS_GREW_EXIT}) to restart on the new count"
    )


class _Admin:
    def __init__(self, topics: dict[str, int] | None) -> None:
        self.topics = topics

    def list_topics(self, timeout: float) -> Any:
        if self.topics is None:
            raise KafkaException(KafkaError(KafkaError._TRANSPORT))
        return SimpleNamespace(
            topics={
                name: SimpleNamespace(error=None, partitions=dict.fromkeys(range(count)))
                for name, count in self.topics.items()
            }
        )


def test_a_cluster_that_cannot_be_asked_is_no_growth() -> None:
    watch = PartitionGrowthWatch(Settings(), {"p.events.clean": 6}, frozenset())
    watch._admin = _Admin(None)  # type: ignore[assignment]
    assert watch.check() == []
    watch._admin = _Admin({"p.events.clean": 8, "other": 99})  # type: ignore[assignment]
    assert watch.check() == [Growth("p.events.clean", "writes", 6, 8)]
    assert watch.grown == [Growth("p.events.clean", "writes", 6, 8)]
