"""Telemetry at logging time: ``PredictionServed`` and ``Alert`` records to Kafka, never
in the way of a request.

Request handlers call :meth:`TelemetrySink.offer_prediction` (or :meth:`TelemetrySink.offer`
for alerts), which appends the record's parts to a bounded in-memory deque and returns (a few
hundred ns; nothing is encoded or sent on the request path). A background task drains the
deque every couple of milliseconds, encodes Avro (predictions with
:mod:`~streamlearn.serving.prediction_codec`, ~5x faster than fastavro) and hands the bytes
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
from collections.abc import Sequence
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamlearn.kafka_clients import producer_config as kafka_producer_config
from streamlearn.serde import AvroSerde, EncodeError, SchemaSource, SerdeError
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.prediction_codec import PredictionEncoder
from streamlearn.serving.validation import Instance
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)

Kind = Literal["prediction", "alert"]
CHUNK = 256
"""Records encoded per turn of the drain before it yields the event loop."""
BACKLOG_CHUNK = 1024
"""Per turn when more than ``4 * CHUNK`` wait: under a burst the drain takes a larger share
of the loop (at most ~15 ms of encoding) instead of dropping records a healthy broker would
take."""
IDLE_S = 0.005
DRAIN_S = 0.002
"""Pause between two turns of the drain while fewer than ``CHUNK`` records wait: each turn
has a fixed cost (a task step, ``poll``), so a turn every couple of milliseconds shares it
between tens of records instead of paying it on every turn of a busy event loop; and a
turn stays short (tens of records, a few hundred µs), which keeps request latency flat."""
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
        catalogue = TopicCatalogue.from_settings(settings)
        destinations: dict[Kind, str] = {
            "prediction": "telemetry.predictions",
            "alert": "monitoring.alerts",
        }
        self.topics: dict[Kind, str] = {
            kind: catalogue.topic(topic).name for kind, topic in destinations.items()
        }
        self.serdes: dict[Kind, AvroSerde] = {
            kind: catalogue.topic(topic).serde(registry) for kind, topic in destinations.items()
        }
        self.capacity = settings.serve_telemetry_buffer
        self.metrics = metrics
        # (kind, key, record): an alert's record is its dict, a prediction's the parts
        # offer_prediction takes (no dict is built for it on the request path).
        self._buffer: deque[tuple[Kind, str, Any]] = deque()
        self._dropped = metrics.telemetry_dropped
        self._drop_full = metrics.telemetry_dropped.labels(reason="buffer_full")
        self._drop_queue_full = metrics.telemetry_dropped.labels(reason="producer_queue_full")
        config = kafka_producer_config(
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
        # One delivery callback for every message (set here, not per produce call); it only
        # counts, and the counts reach Prometheus once per poll (see _count_deliveries).
        config["on_delivery"] = self._report
        config.update({k: v for k, v in (producer_config or {}).items() if k != "partitioner"})
        self._producer = Producer(config)
        self._schemas_ready = False
        self._fast: PredictionEncoder | None = None
        self._delivered = 0
        self._failed = 0

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

    def offer_prediction(
        self,
        prediction: dict[str, Any],
        features: dict[str, Any],
        context: dict[str, str],
        served_ms: int,
        latency_ms: float,
        worker_version: str,
    ) -> None:
        """Queue the ``PredictionServed`` of ``prediction`` (a response entry), or drop it
        (counted) when the buffer is full. The record is built by the drain, not here."""
        if len(self._buffer) >= self.capacity:
            self._drop_full.inc()
            return
        self._buffer.append(
            (
                "prediction",
                prediction["request_id"],
                (prediction, features, context, served_ms, latency_ms, worker_version),
            )
        )

    def offer_predictions(
        self,
        predictions: list[dict[str, Any]],
        instances: Sequence[Instance],
        served_ms: int,
        latency_ms: float,
        worker_version: str,
    ) -> None:
        """:meth:`offer_prediction` for each of a request's predictions (one call per
        request; what does not fit in the buffer is dropped and counted)."""
        buffer = self._buffer
        room = self.capacity - len(buffer)
        if room < len(predictions):
            self._drop_full.inc(len(predictions) - max(room, 0))
            predictions = predictions[: max(room, 0)]
        append = buffer.append
        for prediction, instance in zip(predictions, instances, strict=False):
            append(
                (
                    "prediction",
                    prediction["request_id"],
                    (
                        prediction,
                        instance.features,
                        instance.context,
                        served_ms,
                        latency_ms,
                        worker_version,
                    ),
                )
            )

    def _report(self, error: KafkaError | None, message: Message) -> None:
        # Called by librdkafka (through poll) once per message: count only.
        if error is None:
            self._delivered += 1
        else:
            self._failed += 1

    def _poll(self) -> None:
        """Serve delivery reports and add their counts to the metrics in one step each."""
        self._producer.poll(0)
        if self._delivered:
            self.metrics.telemetry_sent.inc(self._delivered)
            self._delivered = 0
        if self._failed:
            self._dropped.labels(reason="delivery_failed").inc(self._failed)
            self._failed = 0

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

    def _encode(self, kind: Kind, record: Any) -> bytes:
        if kind == "alert":
            return self.serdes[kind].encode(record)
        prediction, features, context, served_ms, latency_ms, worker_version = record
        if self._fast is not None:
            return self._fast.encode_fields(
                prediction["request_id"],
                prediction["user_id"],
                prediction["model_name"],
                prediction["model_version"] or 0,
                prediction["experiment"],
                prediction["arm"],
                features,
                context,
                prediction["score"],
                prediction["decision"],
                prediction["degraded"],
                prediction["degraded_reason"],
                served_ms,
                worker_version,
                latency_ms,
            )
        return self.serdes[kind].encode(
            prediction_record(prediction, features, context, served_ms, latency_ms, worker_version)
        )

    def _send_chunk(self) -> None:
        buffer, producer, encode, topics = self._buffer, self._producer, self._encode, self.topics
        waiting = len(buffer)
        # Drops are counted per chunk: with the broker behind, every record of a chunk can
        # be refused, and a labelled inc per record (~2 µs) was CPU taken from requests.
        queue_full = 0
        for _ in range(min(BACKLOG_CHUNK if waiting > 4 * CHUNK else CHUNK, waiting)):
            kind, key, record = buffer.popleft()
            try:
                value = encode(kind, record)
            except (EncodeError, TypeError, ValueError, KeyError, OverflowError) as exc:
                log.error("telemetry record does not fit its schema: %s", exc)
                self._dropped.labels(reason="encode_error").inc()
                continue
            try:
                # A str key is encoded to UTF-8 by the client; the delivery callback is the
                # producer's (config "on_delivery").
                producer.produce(topics[kind], value, key)
            except BufferError:
                queue_full += 1
            except KafkaException as exc:
                # e.g. a record over message.max.bytes: this one is lost, the rest go on.
                log.warning("telemetry record refused by the producer: %s", exc)
                self._dropped.labels(reason="produce_error").inc()
        if queue_full:
            self._drop_queue_full.inc(queue_full)
        self._poll()

    async def run(self) -> None:
        """Drain forever (cancel to stop); see :meth:`close` for the final flush."""
        while True:
            try:
                if not self._buffer:
                    self._poll()
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
            # A backlog is drained turn after turn; otherwise records gather for a while.
            await asyncio.sleep(0 if len(self._buffer) >= CHUNK else DRAIN_S)

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
        self._poll()
        if remaining:
            self._dropped.labels(reason="delivery_failed").inc(remaining)
        # Release the client now (threads, connections), not when the last reference goes:
        # aiohttp keeps a finished app, and with it this sink, in a cache.
        del self._producer
        return lost + remaining


def prediction_record(
    prediction: dict[str, Any],
    features: dict[str, Any],
    context: dict[str, str],
    served_ms: int,
    latency_ms: float,
    worker_version: str,
) -> dict[str, Any]:
    """The ``PredictionServed`` record of a response entry (for the generic encoder)."""
    return {
        "request_id": prediction["request_id"],
        "user_id": prediction["user_id"],
        "model_name": prediction["model_name"],
        "model_version": prediction["model_version"] or 0,
        "experiment": prediction["experiment"],
        "arm": prediction["arm"],
        "features": features,
        "context": context,
        "score": prediction["score"],
        "decision": prediction["decision"],
        "degraded": prediction["degraded"],
        "degraded_reason": prediction["degraded_reason"],
        "served_ts": served_ms,
        "worker_version": worker_version,
        "latency_ms": latency_ms,
    }
