"""Telemetry at logging time: ``PredictionServed`` and ``Alert`` records to Kafka, never
in the way of a request.

Request handlers call :meth:`TelemetrySink.offer_predictions` once per request (or
:meth:`TelemetrySink.offer` for alerts). A single prediction's request is appended, as it
is (response entry and instance), to a bounded deque, which a background task drains every
couple of milliseconds while requests come (after 100 ms without one, it waits for the next
record instead, polling the producer every ``IDLE_POLL_S``): it encodes Avro a request at a
time (with :mod:`~streamlearn.serving.prediction_codec`, ~5x faster than fastavro, the
fields a request's records share encoded once; no record dict is built) and hands the bytes
to librdkafka's own bounded queue (``produce`` never blocks: a full queue raises
``BufferError``). A batch's records are encoded and handed over in the request's own call,
while its data is in the CPU's caches: a batch of 32 cost 1.15-1.2x less CPU that way, a
single prediction 0.97-0.98x (bench/predict.py A/Bs), so singles keep the drain, which
shares its fixed costs between tens of requests. A batch's records may therefore reach
Kafka before those of single requests answered up to a drain's turn before it (records of
one request keep their order). What cannot be encoded in the call (schemas not known yet, a
record that does not fit) goes to the deque. Every record that cannot be kept is dropped
and counted by reason:

- ``buffer_full``: the deque held ``serve_telemetry_buffer`` records (the drain is behind);
  while the schema registry cannot be reached, these drops are ``no_schema``;
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
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter

from streamlearn.kafka_clients import producer_config as kafka_producer_config
from streamlearn.producer_watch import ProducerWatch, from_a_broker
from streamlearn.serde import AvroSerde, EncodeError, SchemaSource, SerdeError
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.prediction_codec import PredictionEncoder, prediction_record
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
QUIET_TURNS = 20
IDLE_POLL_S = 0.1
"""With nothing buffered the drain looks again after ``IDLE_S``; after ``QUIET_TURNS``
such turns in a row (100 ms without a record) it waits for the next record instead,
polling the producer every ``IDLE_POLL_S`` meanwhile (delivery reports, the delivered
count, the records of batches produced in their own calls); a record offered then wakes
it at once. Looking every 5 ms however long the quiet cost an idle worker 28 ms of CPU a
second (3 % of a core) for nothing (an idle `streamlearn serve`, its CPU time read from
/proc over 20 s; 6.5 ms a second this way). Under traffic the drain's turns are what they
were: it finds records within 100 ms and keeps looking every few milliseconds."""
DRAIN_S = 0.002
"""Pause between two turns of the drain while fewer than ``CHUNK`` records wait: each turn
has a fixed cost (a task step, ``poll``), so a turn every couple of milliseconds shares it
between tens of records instead of paying it on every turn of a busy event loop; and a
turn stays short (tens of records, a few hundred µs), which keeps request latency flat."""
DELIVERY_TIMEOUT_MS = 30_000
PRODUCER_SETTINGS: dict[str, Any] = {
    # Records gather for up to 100 ms before they are sent: librdkafka's threads cost ~1 µs
    # per record at 10,000 single-prediction requests a second, against ~2.4 µs at 20 ms
    # (bench/predict.py A/B); a prediction's record only needs to reach label-join well
    # within its label horizon (minutes).
    "linger.ms": 100,
    "compression.type": "lz4",
    "message.timeout.ms": DELIVERY_TIMEOUT_MS,
    # A delivery report per failed record only: a report per record cost a Python callback
    # each (3 % of a batch's CPU); delivered records are those produced, less the failed
    # and those still in librdkafka's queue (see TelemetrySink._poll).
    "delivery.report.only.error": True,
    # Counted as delivered only once every in-sync replica has it: with acks=1 a record the
    # leader lost in a failover was counted delivered. The wait is the broker's, not the
    # worker's CPU. Not idempotent: an idempotent producer can fail fatally (a sequence
    # gap after a broker restart or a long idle) and then refuses every record until the
    # worker restarts; a record retried twice is one prediction to label-join (request id).
    "enable.idempotence": False,
    "acks": "all",
}
"""The telemetry producer's librdkafka settings (besides the connection's and its queue's
bound)."""
ENCODE_ERRORS = (EncodeError, TypeError, ValueError, KeyError, OverflowError)


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
        # (kind, key, entry): an alert's entry is its record (a dict); a request's
        # predictions are one entry, (response entries, instances, served_ms, latency_ms,
        # worker version): no record is built or encoded on the request path.
        self._buffer: deque[tuple[Kind, str, Any]] = deque()
        self._waiting = 0
        """Records in the buffer (the bound is in records, not entries)."""
        self._dropped = metrics.telemetry_dropped
        self._drop_buffer_full = metrics.telemetry_dropped.labels(reason="buffer_full")
        self._drop_full: Counter = self._drop_buffer_full
        """Where a full buffer's drops are counted: ``buffer_full`` (the drain is behind),
        or ``no_schema`` while the schema registry cannot be reached (the drain waits for
        it: the registry's doing, not the drain's)."""
        self._drop_queue_full = metrics.telemetry_dropped.labels(reason="producer_queue_full")
        config = kafka_producer_config(
            settings, **PRODUCER_SETTINGS, **{"queue.buffering.max.messages": self.capacity}
        )
        # One delivery callback for every failed message (set here, not per produce call);
        # it only counts, and the counts reach Prometheus once per poll (see _poll).
        config["on_delivery"] = self._report
        self.watch = ProducerWatch(settings, self.topics.values())
        config["error_cb"] = self.watch.on_error
        config.update({k: v for k, v in (producer_config or {}).items() if k != "partitioner"})
        self._producer = Producer(config)
        metrics.telemetry_unheard.set_function(self.watch.waited_s)
        self._broker_answered = False
        """A failure report since the last poll was a broker's answer (word from it)."""
        self._schemas_ready = False
        self._idle: asyncio.Future[None] | None = None
        """What the drain awaits while nothing is buffered (None: it is not waiting)."""
        self._fast: PredictionEncoder | None = None
        self._produced = 0
        """Records librdkafka took (produce returned)."""
        self._failed = 0
        """Failed records reported since the last poll counted them."""
        self._failed_total = 0
        self._delivered_total = 0
        """Delivered records counted in the metric so far."""

    @property
    def pending(self) -> int:
        """Records waiting in the deque (a request's predictions are one entry there, as
        many records here)."""
        return self._waiting

    def offer(self, kind: Kind, key: str, record: dict[str, Any]) -> None:
        """Queue ``record`` for Kafka, or drop it (counted) when the buffer is full."""
        if self._waiting >= self.capacity:
            self._drop_full.inc()
            return
        self._waiting += 1
        self._buffer.append((kind, key, record))
        if self._idle is not None:
            self._wake()

    def offer_prediction(
        self,
        prediction: dict[str, Any],
        features: dict[str, Any],
        context: dict[str, str],
        served_ms: int,
        latency_ms: float,
        worker_version: str,
    ) -> None:
        """Send the ``PredictionServed`` of ``prediction`` (a response entry) as
        :meth:`offer_predictions` does."""
        instance = Instance(prediction["user_id"], features, context, None)
        self.offer_predictions([prediction], [instance], served_ms, latency_ms, worker_version)

    def offer_predictions(
        self,
        predictions: list[dict[str, Any]],
        instances: Sequence[Instance],
        served_ms: int,
        latency_ms: float,
        worker_version: str,
    ) -> None:
        """Hand the ``PredictionServed`` of each of a request's predictions (response
        entries; ``instances[i]`` is what ``predictions[i]`` answered) to the producer, or
        queue them as one entry for the drain (see the module's documentation): what does
        not fit in the producer's queue or the buffer is dropped and counted."""
        fast = self._fast
        if fast is not None and len(predictions) > 1:
            # A batch: encoded and handed to librdkafka now, while its data is in the
            # caches (see the module's documentation); what cannot be is buffered below.
            try:
                encoded = fast.encode_request(
                    predictions, instances, served_ms, latency_ms, worker_version
                )
            except ENCODE_ERRORS:
                encoded = None  # one of them does not fit: the drain finds which
            if encoded is not None:
                keys = (prediction["request_id"] for prediction in predictions)
                self._produce(self.topics["prediction"], keys, encoded)
                return
        room = self.capacity - self._waiting
        if room < len(predictions):
            self._drop_full.inc(len(predictions) - max(room, 0))
            if room <= 0:
                return
            predictions = predictions[:room]
        self._waiting += len(predictions)
        self._buffer.append(
            ("prediction", "", (predictions, instances, served_ms, latency_ms, worker_version))
        )
        if self._idle is not None:
            self._wake()

    def _wake(self) -> None:
        """End the drain's idle wait (records were just buffered; every offer is made on
        the event loop's thread, as the drain runs)."""
        idle, self._idle = self._idle, None
        if idle is not None:
            _resolve(idle)

    async def _until_offered(self, timeout_s: float) -> None:
        """Wait until a record is buffered or ``timeout_s`` has passed."""
        loop = asyncio.get_running_loop()
        idle = self._idle = loop.create_future()
        timer = loop.call_later(timeout_s, _resolve, idle)
        try:
            await idle
        finally:
            timer.cancel()
            self._idle = None

    def _report(self, error: KafkaError | None, message: Message) -> None:
        # Called by librdkafka (through poll) once per failed message: count only.
        if error is not None:
            self._failed += 1
            self._broker_answered = self._broker_answered or from_a_broker(error)

    def _poll(self) -> None:
        """Serve delivery reports (failures only) and add the counts to the metrics in one
        step each: delivered is what librdkafka took, less what failed and what is still
        in its queue. The queue's length counts a report waiting to be served as one
        however many records it holds, so failures reported between the poll and the
        length would count as delivered for a moment; the count never goes back, and
        simply waits for the deliveries to catch up (the drop counts are exact)."""
        self._producer.poll(0)
        if self._failed:
            self._dropped.labels(reason="delivery_failed").inc(self._failed)
            self._failed_total += self._failed
            self._failed = 0
        queued = len(self._producer)
        delivered = self._produced - self._failed_total - queued
        heard, self._broker_answered = self._broker_answered, False
        if delivered > self._delivered_total:
            self.metrics.telemetry_sent.inc(delivered - self._delivered_total)
            self._delivered_total = delivered
            heard = True
        if heard:
            self.watch.heard(waiting=queued > 0)

    async def _ensure_schemas(self) -> bool:
        if not self._schemas_ready:
            try:
                for serde in self.serdes.values():
                    await asyncio.to_thread(getattr, serde, "schema_id")
            except SerdeError as exc:
                log.warning("telemetry waits for the schema registry: %s", exc)
                self._drop_full = self._dropped.labels(reason="no_schema")
                return False
            self._drop_full = self._drop_buffer_full
            fast = PredictionEncoder(self.serdes["prediction"])
            if fast.matches(self.serdes["prediction"]):
                self._fast = fast
                if not fast.compiled:
                    # The same bytes, ~3 µs more CPU per prediction (prediction_codec).
                    log.info(
                        "telemetry encodes PredictionServed in Python: the compiled "
                        "encoder was not built (no C compiler when streamlearn was installed)"
                    )
            else:
                log.warning("PredictionServed changed: telemetry encodes with fastavro")
            self._schemas_ready = True
        return True

    def _encode_each(self, entry: Any) -> tuple[list[str], list[bytes | None]]:
        """The keys and values of a request's records encoded one by one (without the
        specialised encoder, or when one of them does not fit): None for a record that
        does not fit its schema (logged, counted as ``encode_error``)."""
        predictions, instances, served_ms, latency_ms, worker_version = entry
        encode = self.serdes["prediction"].encode if self._fast is None else self._fast.encode
        keys: list[str] = []
        values: list[bytes | None] = []
        for prediction, instance in zip(predictions, instances, strict=False):
            record = prediction_record(
                prediction, instance.features, instance.context, served_ms, latency_ms,
                worker_version,
            )  # fmt: skip
            try:
                values.append(encode(record))
            except ENCODE_ERRORS as exc:
                log.error("telemetry record does not fit its schema: %s", exc)
                self._dropped.labels(reason="encode_error").inc()
                values.append(None)
            keys.append(prediction["request_id"])
        return keys, values

    def _send_chunk(self) -> None:
        buffer = self._buffer
        # Records per turn; a request's records are taken together (a batch of up to
        # serve_max_instances can go over by that much).
        budget = BACKLOG_CHUNK if self._waiting > 4 * CHUNK else CHUNK
        taken = 0
        # The turn's predictions, handed to librdkafka in one call at its end (in the
        # order they were offered): a call per request cost ~1 µs of CPU a request.
        keys: list[str] = []
        values: list[bytes | None] = []
        try:
            while buffer and taken < budget:
                kind, key, entry = buffer.popleft()
                if kind == "prediction":
                    taken += len(entry[0])
                    self._gather(entry, keys, values)
                else:
                    taken += 1
                    self._send_alert(kind, key, entry)
        finally:
            # Also when a bug ends the turn early (the run loop logs it): what was
            # encoded is handed over, and what was taken is no longer waiting.
            self._waiting -= taken
            if values:
                self._produce(self.topics["prediction"], keys, values)
        self._poll()

    def _gather(self, entry: Any, keys: list[str], values: list[bytes | None]) -> None:
        """Append a request's records (its buffer entry) to ``keys`` and ``values``."""
        predictions = entry[0]
        encoded = None
        if self._fast is not None:
            try:
                encoded = self._fast.encode_request(*entry)
            except ENCODE_ERRORS:
                encoded = None  # one of them does not fit: which, one by one below
        if encoded is None:
            each_keys, each_values = self._encode_each(entry)
            keys += each_keys
            values += each_values
        else:
            if len(predictions) == 1:
                keys.append(predictions[0]["request_id"])
            else:
                keys += [p["request_id"] for p in predictions]
            values += encoded

    def _send_alert(self, kind: Kind, key: str, record: dict[str, Any]) -> None:
        try:
            value = self.serdes[kind].encode(record)
        except ENCODE_ERRORS as exc:
            log.error("telemetry record does not fit its schema: %s", exc)
            self._dropped.labels(reason="encode_error").inc()
            return
        self._produce(self.topics[kind], [key], [value])

    def _produce(
        self, topic: str, keys: Iterable[str], values: list[bytes | None] | list[bytes]
    ) -> None:
        """Hand records to librdkafka (None: a record that was not encoded, skipped); what
        its full queue refuses is dropped and counted, once per call: with the broker
        behind, every record can be refused, and a count per record was CPU taken from
        requests."""
        produce = self._producer.produce
        produced = queue_full = 0
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            try:
                # A str key is encoded to UTF-8 by the client; the delivery callback is
                # the producer's (config "on_delivery").
                produce(topic, value, key)
                produced += 1
            except BufferError:
                queue_full += 1
            except KafkaException as exc:
                self._refused(exc)
        self._produced += produced
        if produced:
            self.watch.handed()
        if queue_full:
            self._drop_queue_full.inc(queue_full)

    def _refused(self, exc: KafkaException) -> None:
        # e.g. a record over message.max.bytes: this one is lost, the rest go on.
        log.warning("telemetry record refused by the producer: %s", exc)
        self._dropped.labels(reason="produce_error").inc()

    async def run(self) -> None:
        """Drain forever (cancel to stop); see :meth:`close` for the final flush."""
        quiet_turns = 0
        while True:
            try:
                if not self._buffer:
                    self._poll()
                    quiet_turns += 1
                    if quiet_turns < QUIET_TURNS:
                        await asyncio.sleep(IDLE_S)
                    else:
                        await self._until_offered(IDLE_POLL_S)
                    continue
                quiet_turns = 0
                if not await self._ensure_schemas():
                    await asyncio.sleep(1.0)
                    continue
                self._send_chunk()
            except Exception:
                # A bug must not stop telemetry for good: log it loudly and go on.
                log.exception("telemetry drain failed")
                await asyncio.sleep(1.0)
            # A backlog is drained turn after turn; otherwise records gather for a while.
            await asyncio.sleep(0 if self._waiting >= CHUNK else DRAIN_S)

    async def close(self, timeout_s: float = 5.0) -> int:
        """Send what is buffered (if the schemas are known), flush; returns records lost."""
        if self._buffer and self._schemas_ready:
            while self._buffer:
                self._send_chunk()
        lost = self._waiting
        if lost:
            self._dropped.labels(reason="no_schema").inc(lost)
            self._buffer.clear()
            self._waiting = 0
        remaining = int(await asyncio.to_thread(self._producer.flush, timeout_s))
        self._poll()
        if remaining:
            self._dropped.labels(reason="delivery_failed").inc(remaining)
        # Release the client now (threads, connections), not when the last reference goes:
        # aiohttp keeps a finished app, and with it this sink, in a cache.
        del self._producer
        return lost + remaining


def _resolve(future: asyncio.Future[None]) -> None:
    """End an idle wait (an offer, or the poll's timer: whichever comes first)."""
    if not future.done():
        future.set_result(None)
