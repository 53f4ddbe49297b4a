"""Telemetry at logging time: ``PredictionServed`` and ``Alert`` records to Kafka, never
in the way of a request.

Request handlers call :meth:`TelemetrySink.offer`, which appends the record to a bounded
in-memory deque and returns (a few hundred ns; nothing is encoded or sent on the request
path). A background task drains the deque in small chunks, encodes Avro (predictions with
:mod:`~streamlearn.serving.prediction_codec`, ~2x faster than fastavro) and hands the bytes
to librdkafka's own bounded queue (``produce`` never blocks: a full queue raises
``BufferError``). Every record that cannot be kept is dropped and counted by reason:

- ``buffer_full``: the deque held ``serve_telemetry_buffer`` records (the drain is behind);
- ``producer_queue_full``: librdkafka's queue is full (the broker is slow or unreachable);
- ``delivery_failed``: Kafka did not confirm it within the delivery timeout;
- ``encode_error``: the record does not fit its schema (a bug; logged);
- ``produce_error``: the producer refused the record (e.g. larger than ``message.max.bytes``);
- ``no_schema``: the schema registry could not be reached to encode it.

A dead broker therefore costs requests nothing: records pile up to the bounds, then drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamlearn.kafka_clients import confluent_config
from streamlearn.serde import AvroSerde, EncodeError, SchemaSource, SerdeError
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.prediction_codec import PredictionEncoder
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

Kind = Literal["prediction", "alert"]
CHUNK = 256
"""Records encoded per turn of the drain before it yields the event loop."""
BACKLOG_CHUNK = 1024
"""Per turn when more than ``4 * CHUNK`` wait: under a burst the drain takes a larger share
of the loop (at most ~15 ms of encoding) instead of dropping records a healthy broker would
take."""
IDLE_S = 0.005
DELIVERY_TIMEOUT_MS = 30_000


class TelemetrySink:
    """Bounded, non-blocking path from request handlers to ``telemetry.predictions`` and
    ``monitoring.alerts``."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaSource,
        metrics: ServingMetrics,
        *,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        prefix = settings.topic_prefix
        self.topics: dict[Kind, str] = {
            "prediction": prefix + "telemetry.predictions",
            "alert": prefix + "monitoring.alerts",
        }
        self.serdes: dict[Kind, AvroSerde] = {
            "prediction": AvroSerde.for_topic(
                registry, self.topics["prediction"], "PredictionServed"
            ),
            "alert": AvroSerde.for_topic(registry, self.topics["alert"], "Alert"),
        }
        self.capacity = settings.serve_telemetry_buffer
        self.metrics = metrics
        self._buffer: deque[tuple[Kind, str, dict[str, Any]]] = deque()
        self._dropped = metrics.telemetry_dropped
        self._drop_full = metrics.telemetry_dropped.labels(reason="buffer_full")
        config = confluent_config(
            settings,
            **{
                "linger.ms": 20,
                "compression.type": "lz4",
                "queue.buffering.max.messages": self.capacity,
                "message.timeout.ms": DELIVERY_TIMEOUT_MS,
                "enable.idempotence": False,
                "acks": 1,
            },
        )
        config.update(producer_config or {})
        self._producer = Producer(config)
        self._schemas_ready = False
        self._fast: PredictionEncoder | None = None

    @property
    def pending(self) -> int:
        """Records waiting in the deque."""
        return len(self._buffer)

    def offer(self, kind: Kind, key: str, record: dict[str, Any]) -> None:
        """Queue ``record`` for Kafka, or drop it (counted) when the buffer is full."""
        if len(self._buffer) >= self.capacity:
            self._drop_full.inc()
            return
        self._buffer.append((kind, key, record))

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.metrics.telemetry_sent.inc()
        else:
            self._dropped.labels(reason="delivery_failed").inc()

    async def _ensure_schemas(self) -> bool:
        if not self._schemas_ready:
            try:
                for serde in self.serdes.values():
                    await asyncio.to_thread(getattr, serde, "schema_id")
            except SerdeError as exc:
                log.warning("telemetry waits for the schema registry: %s", exc)
                return False
            fast = PredictionEncoder(self.serdes["prediction"])
            if fast.matches(self.serdes["prediction"]):
                self._fast = fast
            else:
                log.warning("PredictionServed changed: telemetry encodes with fastavro")
            self._schemas_ready = True
        return True

    def _send_chunk(self) -> None:
        buffer, producer, fast = self._buffer, self._producer, self._fast
        waiting = len(buffer)
        for _ in range(min(BACKLOG_CHUNK if waiting > 4 * CHUNK else CHUNK, waiting)):
            kind, key, record = buffer.popleft()
            try:
                if kind == "prediction" and fast is not None:
                    value = fast.encode(record)
                else:
                    value = self.serdes[kind].encode(record)
            except (EncodeError, TypeError, ValueError, KeyError, OverflowError) as exc:
                log.error("telemetry record does not fit its schema: %s", exc)
                self._dropped.labels(reason="encode_error").inc()
                continue
            try:
                producer.produce(
                    self.topics[kind], key=key.encode(), value=value, on_delivery=self._report
                )
            except BufferError:
                self._dropped.labels(reason="producer_queue_full").inc()
            except KafkaException as exc:
                # e.g. a record over message.max.bytes: this one is lost, the rest go on.
                log.warning("telemetry record refused by the producer: %s", exc)
                self._dropped.labels(reason="produce_error").inc()
        producer.poll(0)

    async def run(self) -> None:
        """Drain forever (cancel to stop); see :meth:`close` for the final flush."""
        while True:
            try:
                if not self._buffer:
                    self._producer.poll(0)
                    await asyncio.sleep(IDLE_S)
                    continue
                if not await self._ensure_schemas():
                    await asyncio.sleep(1.0)
                    continue
                self._send_chunk()
            except Exception:
                # A bug must not stop telemetry for good: log it loudly and go on.
                log.exception("telemetry drain failed")
                await asyncio.sleep(1.0)
            await asyncio.sleep(0)

    async def close(self, timeout_s: float = 5.0) -> int:
        """Send what is buffered (if the schemas are known), flush; returns records lost."""
        if self._buffer and self._schemas_ready:
            while self._buffer:
                self._send_chunk()
        lost = len(self._buffer)
        if lost:
            self._dropped.labels(reason="no_schema").inc(lost)
            self._buffer.clear()
        remaining = int(await asyncio.to_thread(self._producer.flush, timeout_s))
        if remaining:
            self._dropped.labels(reason="delivery_failed").inc(remaining)
        return lost + remaining
