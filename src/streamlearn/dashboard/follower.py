"""Following ``model.state``, ``model.metrics``, ``monitoring.alerts`` and
``monitoring.drift`` from the beginning, in a thread.

Like the prediction workers with ``model.state``, the dashboard uses no consumer group: it
assigns every partition itself at the beginning, never commits, and so never competes with
anything or leaves offsets behind (librdkafka wants a ``group.id`` all the same; a unique
one is never joined). A topic that does not exist yet, or a partition added later, is
picked up by the metadata refresh. confluent-kafka's ``consume`` blocks, so the loop runs in
its own thread and hands decoded batches to the event loop; librdkafka reconnects by
itself, so one consumer lasts as long as the dashboard and nothing is read twice. A record
that cannot be decoded is skipped and counted; one whose schema the registry could not
give (the registry is down) is read again, a second later, until it can.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streamlearn.dashboard.decoding import Decoders
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.state import Decoded, FollowStatus
from streamlearn.kafka_clients import confluent_config
from streamlearn.runtime.kafka_wait import kafka_error_said
from streamlearn.serde import RegistryUnavailableError, SerdeError
from streamlearn.settings import Settings
from streamlearn.topology.namespace import Namespace

log = logging.getLogger(__name__)

POLL_S = 0.2
BATCH = 500
REFRESH_S = 10.0
"""How often partitions are looked up again once every followed topic was found."""
MISSING_REFRESH_S = 1.0
"""... and while one is still missing."""
GROUP_PREFIX = "streamlearn-dashboard-"
"""The never-joined group id is this and a random suffix, in the namespace (as the topics:
the ACL for these groups of one deployment does not reach another's on the same cluster)."""
METADATA_TIMEOUT_S = 5.0
REGISTRY_RETRY_S = 1.0


class TopicFollower:
    """Reads the followed topics in a thread; ``deliver`` gets each decoded batch and
    ``report`` each change of status (both called from that thread)."""

    def __init__(
        self,
        settings: Settings,
        decoders: Decoders,
        *,
        deliver: Callable[[list[Decoded]], None],
        report: Callable[[FollowStatus], None],
        metrics: DashboardMetrics,
    ) -> None:
        self.settings = settings
        self.decoders = decoders
        self.deliver = deliver
        self.report = report
        self.metrics = metrics
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-follower", daemon=True)
        self._assigned: dict[str, set[int]] = {}
        self._status = FollowStatus()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop reading and close the consumer (blocks up to ``timeout_s``)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _consumer(self) -> Consumer:
        return Consumer(
            confluent_config(
                self.settings,
                **{
                    "group.id": Namespace(self.settings.topic_prefix).group(
                        f"{GROUP_PREFIX}{uuid.uuid4().hex}"
                    ),
                    "enable.auto.commit": False,
                    "enable.auto.offset.store": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 200,
                },
            )
        )

    def _run(self) -> None:
        consumer = self._consumer()
        try:
            refresh_at = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= refresh_at:
                    missing = self._assign_new(consumer)
                    refresh_at = time.monotonic() + (MISSING_REFRESH_S if missing else REFRESH_S)
                if not any(self._assigned.values()):
                    # Nothing to read, but polled: it hands librdkafka's log lines over.
                    consumer.poll(POLL_S)
                    continue
                self._consume(consumer)
        except Exception:
            log.exception("dashboard: the topic follower stopped")
            self._set_status(error="the topic follower stopped; see the dashboard's log")
        finally:
            consumer.close()

    def _assign_new(self, consumer: Consumer) -> list[str]:
        """Assign partitions not assigned yet, at the beginning; the topics still missing."""
        try:
            topics = consumer.list_topics(timeout=METADATA_TIMEOUT_S).topics
        except KafkaException as exc:
            self.metrics.kafka_errors.labels(reader="follower").inc()
            said = kafka_error_said(exc, self.settings.kafka_bootstrap)
            self._set_status(error=f"metadata: {said}")
            return list(self.decoders.topics)
        missing = []
        new: list[TopicPartition] = []
        for name in self.decoders.topics:
            metadata = topics.get(name)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                missing.append(name)  # as Kafka names it: another prefix shows
                continue
            have = self._assigned.setdefault(name, set())
            for partition in sorted(set(metadata.partitions) - have):
                new.append(TopicPartition(name, partition, OFFSET_BEGINNING))
                have.add(partition)
        if new:
            consumer.incremental_assign(new)
        self._set_status(
            assigned={self.decoders.logical[n]: len(p) for n, p in self._assigned.items()},
            missing=missing,
            error=None,
        )
        return missing

    def _consume(self, consumer: Consumer) -> None:
        messages = consumer.consume(num_messages=BATCH, timeout=POLL_S)
        batch: list[Decoded] = []
        # partition → the first record that must be read again (the registry did not
        # answer: skipping it would lose it for good, so the partition goes back to it).
        again: dict[tuple[str, int], int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self.metrics.kafka_errors.labels(reader="follower").inc()
                log.warning("dashboard: reading %s: %s", message.topic(), error)
                continue
            topic, value = message.topic(), message.value()
            partition, offset = message.partition() or 0, message.offset() or 0
            if topic is None or value is None or (topic, partition) in again:
                continue  # a tombstone (nothing to show), or after a record to read again
            logical = self.decoders.logical.get(topic, topic)
            try:
                decoded = self.decoders.decode(topic, value, partition, offset)
            except RegistryUnavailableError as exc:
                again[(topic, partition)] = offset
                self._set_status(error=f"schema registry: {exc.detail}")
                continue
            except SerdeError as exc:
                self.metrics.undecodable.labels(topic=logical).inc()
                log.warning("dashboard: skipped an undecodable record: %s", exc)
                continue
            self.metrics.records.labels(topic=logical).inc()
            batch.append(decoded)
        if batch:
            self.deliver(batch)
        for (topic, partition), offset in again.items():
            consumer.seek(TopicPartition(topic, partition, offset))
        if again:
            self.metrics.kafka_errors.labels(reader="registry").inc()
            self._stop.wait(REGISTRY_RETRY_S)
        elif messages and self._status.error is not None:
            self._set_status(error=None)

    def _set_status(self, **changes: Any) -> None:
        status = FollowStatus(
            assigned=changes.get("assigned", self._status.assigned),
            missing=changes.get("missing", self._status.missing),
            error=changes.get("error", self._status.error),
        )
        if status != self._status:
            self._status = status
            self.report(status)
