"""The Faust app of a worker (batch handlers, revocation listeners) and what it runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import faust
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config, may_not_describe
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.faust_guard import check_faust_methods
from streamlearn.runtime.faust_internals import BatchHandler
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.outputs import BatchProducer
from streamlearn.runtime.step import Step
from streamlearn.serde import SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

RevokeListener = Callable[[set[Any]], Awaitable[None]]


class BatchingApp(faust.App):
    """A ``faust.App`` whose topics can have batch handlers (see faust_internals)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        check_faust_methods()
        super().__init__(*args, **kwargs)
        self._batch_handlers: dict[str, BatchHandler] = {}
        self._revoke_listeners: list[RevokeListener] = []
        self.batch_producer = BatchProducer(self)
        self.waiting_for: str | None = None
        """What a batch waits for before it can be handled (the readiness probe says)."""
        self.fetch_hold_ms: int | None = None
        """How long the broker may hold a fetch to gather a batch (the steps'
        :attr:`~streamlearn.runtime.step.Step.fetch_hold_ms`; None: 200 ms, for nothing)."""

    def batch_agent(self, topic: faust.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register a batch handler for every partition of ``topic`` (one handler per topic)."""

        def register(handler: BatchHandler) -> BatchHandler:
            for name in topic.topics:
                if name in self._batch_handlers:
                    raise RuntimeConfigurationError(f"topic {name} already has a batch agent")
                self._batch_handlers[name] = handler
            # Subscribing through the conductor makes the topic part of the consumer's
            # subscription and of the assignor's co-partitioning, like an agent's topic.
            self.topics.add(topic)
            return handler

        return register

    def batch_handler_for(self, topic: str) -> BatchHandler | None:
        return self._batch_handlers.get(topic)

    def on_batches_revoked(self, listener: RevokeListener) -> None:
        """``await listener(revoked)`` once the batches of revoked partitions are done and
        before their offsets are committed (their last outputs go out then)."""
        self._revoke_listeners.append(listener)

    async def batches_revoked(self, revoked: set[Any]) -> None:
        for listener in self._revoke_listeners:
            await listener(revoked)


@dataclass
class WorkerRuntime:
    """What a worker process runs: its app, its steps, their metrics."""

    app: BatchingApp
    settings: Settings
    catalogue: TopicCatalogue
    registry: SchemaSource
    metrics: AgentMetrics
    steps: list[Step] = field(default_factory=list)
    started_partitions: dict[str, int] = field(default_factory=dict)
    """The partition count of each topic its steps read or write (Kafka name), as it
    started: what its writers place keys by and its stores are sized by
    (:mod:`streamlearn.runtime.partition_growth` stops the worker when one grows)."""

    def input_topics(self) -> frozenset[str]:
        """The Kafka names of the topics its steps read."""
        return frozenset(
            self.catalogue.topic(topic).name for step in self.steps for topic in step.inputs
        )

    def partitions_of(self, name: str) -> int:
        """Partition count of an existing topic (Kafka name); the first one read of each
        topic is kept as the count the worker started with."""
        count = topic_partitions(self.settings, name)
        self.started_partitions.setdefault(name, count)
        return count


def topic_partitions(settings: Settings, name: str) -> int:
    """Partition count of the existing topic ``name`` (Kafka's name)."""
    metadata = AdminClient(confluent_config(settings)).list_topics(name, timeout=30)
    found = metadata.topics.get(name)
    refused = KafkaError.TOPIC_AUTHORIZATION_FAILED
    if found is not None and found.error is not None and found.error.code() == refused:
        raise RuntimeConfigurationError(
            may_not_describe(settings.kafka_sasl_username, name, "topic authorization failed")
        )
    if found is None or found.error is not None or not found.partitions:
        raise RuntimeConfigurationError(
            f"topic {name} does not exist: run `streamlearn topics apply` first"
        )
    return len(found.partitions)
