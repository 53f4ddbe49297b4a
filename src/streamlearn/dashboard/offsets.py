"""The pipeline's rates: end offsets of its topics, sampled once a second in a thread.

Every record a part writes moves its topic's end offset by one, so the end offsets of
``telemetry.events``, ``events.clean``, ... sampled each second give each stage's records
per second without asking any part (and without reading a single record). One
``ListOffsets`` request covers every partition (the admin client batches them per broker).
End offsets are read uncommitted (the high watermark): a transaction's records count when
written; a transaction marker counts as one offset too, which is why the rates are
"about" records per second for transactional producers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import IsolationLevel, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.rates import Source
from streamlearn.kafka_clients import confluent_config
from streamlearn.runtime.kafka_wait import kafka_error_said
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

REFRESH_S = 10.0
REQUEST_TIMEOUT_S = 5.0


class EndOffsetSampler:
    """Samples the end offsets of ``topics`` ({Kafka name: series}) every ``interval_s``;
    ``deliver(t, {(series, partition): end offset})`` is called from the thread, and
    ``report(error or None)`` when reading starts or stops failing."""

    def __init__(
        self,
        settings: Settings,
        topics: Mapping[str, str],
        *,
        deliver: Callable[[float, dict[Source, float]], None],
        report: Callable[[str | None], None],
        metrics: DashboardMetrics,
        interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.topics = dict(topics)
        self.deliver = deliver
        self.report = report
        self.metrics = metrics
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-offsets", daemon=True)
        self._partitions: list[TopicPartition] = []
        self._error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        admin = AdminClient(confluent_config(self.settings))
        refresh_at = 0.0
        next_at = time.monotonic()
        try:
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at = max(next_at + self.interval_s, time.monotonic())
                admin.poll(0)  # hands librdkafka's queued log lines to logging
                try:
                    if time.monotonic() >= refresh_at or not self._partitions:
                        self._refresh(admin)
                        refresh_at = time.monotonic() + REFRESH_S
                    self._sample(admin)
                    self._set_error(None)
                except KafkaException as exc:
                    self.metrics.kafka_errors.labels(reader="offsets").inc()
                    said = kafka_error_said(exc, self.settings.kafka_bootstrap)
                    self._set_error(f"end offsets: {said}")
        except Exception:
            log.exception("dashboard: the end-offset sampler stopped")
            self._set_error("the end-offset sampler stopped; see the dashboard's log")
        finally:
            del admin  # its librdkafka threads end with it

    def _refresh(self, admin: AdminClient) -> None:
        topics = admin.list_topics(timeout=REQUEST_TIMEOUT_S).topics
        self._partitions = [
            TopicPartition(name, partition)
            for name in self.topics
            if (metadata := topics.get(name)) is not None and metadata.error is None
            for partition in sorted(metadata.partitions)
        ]

    def _sample(self, admin: AdminClient) -> None:
        if not self._partitions:
            return
        sent = time.time()
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = admin.list_offsets(
            {tp: latest for tp in self._partitions},
            isolation_level=IsolationLevel.READ_UNCOMMITTED,
            request_timeout=REQUEST_TIMEOUT_S,
        )
        counts: dict[Source, float] = {}
        for tp, future in futures.items():
            try:
                counts[(self.topics[tp.topic], str(tp.partition))] = float(future.result().offset)
            except KafkaException:
                continue  # left out of this sample (a leader moving), see rates.py
        self.metrics.offset_samples.inc()
        self.deliver(sent, counts)

    def _set_error(self, error: str | None) -> None:
        if error != self._error:
            self._error = error
            if error:
                log.warning("dashboard: %s", error)
            self.report(error)
