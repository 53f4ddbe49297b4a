"""A confluent-kafka producer for asyncio: produce a batch, await every delivery report.

librdkafka delivers reports on the thread that polls; a dedicated thread polls and hands
each report to the event loop, so request handlers can await their own batch without
blocking the loop. Delivery is bounded by ``message.timeout.ms``.

What a failure means for the batch's records, which is what the collector's 503 says:

- :class:`QueueFullError`: the local queue could not take the whole batch (its record
  count, checked first) or its first record (its bytes), so none of it was handed to
  librdkafka (the check and the produce calls run on the event loop's thread, the only one
  that adds to the queue). Nothing was written.
- :class:`NotSentError`: librdkafka refused the first record at once (e.g. over its
  ``message.max.bytes``), so none was handed over. Nothing was written.
- :class:`DeliveryFailedError` (any other): Kafka did not confirm every record in time, or
  librdkafka refused one after the first at once (it and those after it were not sent).
  Those confirmed are written; the others may or may not be: a delivery report's error
  does not say whether the record reached a broker (a timed-out one may have, in flight),
  and confluent-kafka does not expose librdkafka's per-message persistence status.
  Retrying with the same event ids is safe, because the pipeline deduplicates by event id.

Once a record is handed to librdkafka it is Kafka's: cancelling the caller (a client that
went away) does not cancel its delivery, and its report still arrives and is counted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streamlearn.exceptions import StreamlearnError
from streamlearn.producer_watch import ProducerWatch, from_a_broker

log = logging.getLogger(__name__)

DEFAULT_QUEUE_MESSAGES = 100_000  # librdkafka's default queue.buffering.max.messages
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's default message.max.bytes


class DeliveryFailedError(StreamlearnError):
    """Kafka did not confirm every record of a batch (some may have been written)."""


class NotSentError(DeliveryFailedError):
    """No record of the batch was handed to librdkafka (each refused at once): none of it
    can be written."""


class QueueFullError(NotSentError):
    """The producer's local queue cannot take the batch; none of it was produced."""


class _BatchDelivery:
    """Delivery reports of one batch, settled on the event loop's thread."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_confirmed: Callable[[int], None] | None,
        on_report: Callable[[bool], None] | None = None,
    ) -> None:
        self.loop = loop
        self.on_report = on_report
        """Called (on the loop) for each report, with whether it is word from a broker."""
        self.done: asyncio.Future[None] = loop.create_future()
        self.on_confirmed = on_confirmed
        self.expected = 0
        self.settled = 0
        self.failures: list[str] = []
        self.sealed = False

    def reporter(self, index: int) -> Callable[[KafkaError | None, Message], None]:
        """The librdkafka delivery callback of record ``index`` (runs on the poll thread)."""

        def report(error: KafkaError | None, message: Message) -> None:
            problem = None if error is None else f"{message.topic()}: {error.str()}"
            self.loop.call_soon_threadsafe(self._settle, index, problem, from_a_broker(error))

        return report

    def _settle(self, index: int, problem: str | None, heard: bool) -> None:
        self.settled += 1
        if self.on_report is not None:
            self.on_report(heard)
        if problem is None:
            if self.on_confirmed is not None:
                self.on_confirmed(index)
        else:
            self.failures.append(problem)
        self._maybe_done()

    def seal(self) -> None:
        """Every record of the batch was handed over (``expected`` is final)."""
        self.sealed = True
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.sealed and self.settled >= self.expected and not self.done.done():
            self.done.set_result(None)


class AsyncProducer:
    """``config``'s producer; ``watch``, when given, is told what it hands over and hears
    (and its fatal errors), for the process's liveness."""

    def __init__(self, config: dict[str, Any], watch: ProducerWatch | None = None) -> None:
        self.watch = watch
        if watch is not None:
            config = {**config, "error_cb": watch.on_error}
        self._producer = Producer(config)
        self._capacity = int(config.get("queue.buffering.max.messages", DEFAULT_QUEUE_MESSAGES))
        self._unreported = 0
        """Records handed over whose report has not been settled (counted on the loop)."""
        self.max_message_bytes = int(config.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))
        """The largest record (key and value) librdkafka takes: a larger one is refused."""
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(0.1)
            except KafkaException as exc:
                # confluent-kafka raises a fatal error (an idempotent producer refused its
                # producer id, a lost sequence) from poll, not through error_cb. Uncaught it
                # ended this thread: no report arrived again, and /healthz said ok for good.
                # Polling goes on, for the reports librdkafka fails queued records with.
                self._fatal(exc)

    def _fatal(self, exc: KafkaException) -> None:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None:
            error = KafkaError(KafkaError._FATAL, str(exc), fatal=True)
        if self.watch is not None:
            self.watch.on_error(error)
        else:
            log.error("the Kafka producer: %s", error.str())

    async def produce(
        self,
        records: Sequence[tuple[str, bytes, bytes]],
        on_confirmed: Callable[[int], None] | None = None,
    ) -> None:
        """Produce ``(topic, key, value)`` records; returns once Kafka confirmed all.

        ``on_confirmed(i)`` is called (on the loop) for each record Kafka confirmed, also
        after the caller was cancelled. Raises :class:`NotSentError` (nothing produced;
        :class:`QueueFullError` when the queue was full) or :class:`DeliveryFailedError`
        (see the module docstring).
        """
        queued = len(self._producer)
        if queued + len(records) > self._capacity:
            raise QueueFullError(
                f"the producer queue holds {queued} of {self._capacity} records: "
                f"no room for {len(records)}"
            )
        batch = _BatchDelivery(asyncio.get_running_loop(), on_confirmed, self._reported)
        queue_full = False
        for index, (topic, key, value) in enumerate(records):
            try:
                self._producer.produce(
                    topic, key=key, value=value, on_delivery=batch.reporter(index)
                )
            except BufferError:
                # The queue's byte limit (the count was checked above): the records before
                # this one are librdkafka's and are still awaited; the rest are not sent.
                unsent = len(records) - index
                batch.failures += ["the producer queue is full (not sent)"] * unsent
                queue_full = True
                break
            except KafkaException as exc:
                # Refused at once (a record over message.max.bytes): as above, the records
                # before it are awaited, this one and the rest are not sent. Raised, it was
                # a 500 with the records before it written.
                unsent = len(records) - index
                batch.failures += [f"{topic}: {exc.args[0].str()} (not sent)"] * unsent
                break
            batch.expected += 1
            self._unreported += 1
        if batch.failures and not batch.expected:
            # Nothing was handed over, so nothing can be written: said for certain, where
            # a report's error cannot say it (a timed-out record may have been written).
            refused = QueueFullError if queue_full else NotSentError
            raise refused(f"none of {len(records)} sent: {batch.failures[0]}")
        if batch.expected and self.watch is not None:
            self.watch.handed()
        batch.seal()
        # Shielded: a cancelled caller must not cancel what librdkafka still delivers.
        await asyncio.shield(batch.done)
        if batch.failures:
            raise DeliveryFailedError(
                f"{len(batch.failures)} of {len(records)} not confirmed: {batch.failures[0]}"
            )

    def _reported(self, heard: bool) -> None:
        """A record's report was settled; ``heard``: it is word from a broker. Whether
        others still wait is this count, not ``len(producer)``: librdkafka counts a record
        until its delivery callback has returned, and the loop may settle the report before
        that, so the last report of a quiet spell said records still waited: /healthz
        failed kafka_producer_stall_s later and the idle collector was restarted."""
        self._unreported -= 1
        if heard and self.watch is not None:
            self.watch.heard(waiting=self._unreported > 0)

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued and stop polling; returns how many records were left."""
        remaining = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join()
        # Release the client now (its threads and connections), not when the last reference
        # goes: aiohttp keeps a finished app, and with it this object, in a cache.
        del self._producer
        return int(remaining)
