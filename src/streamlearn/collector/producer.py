"""A confluent-kafka producer for asyncio: produce a batch, await every delivery report.

librdkafka delivers reports on the thread that polls; a dedicated thread polls and hands
each report to the event loop, so request handlers can await their own batch without
blocking the loop. Delivery is bounded by ``message.timeout.ms``: a batch that Kafka did not
confirm in time fails as a whole, and the collector answers 503 instead of 202.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streamlearn.exceptions import StreamlearnError


class DeliveryFailedError(StreamlearnError):
    """Kafka did not confirm every record of a batch."""


class AsyncProducer:
    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="collector-producer", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    async def produce(self, records: Sequence[tuple[str, bytes, bytes]]) -> None:
        """Produce ``(topic, key, value)`` records; returns once Kafka confirmed all."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []

        def reporter(future: asyncio.Future[None]) -> Any:
            def report(error: KafkaError | None, message: Message) -> None:
                if error is None:
                    loop.call_soon_threadsafe(future.set_result, None)
                else:
                    failure = DeliveryFailedError(f"{message.topic()}: {error.str()}")
                    loop.call_soon_threadsafe(future.set_exception, failure)

            return report

        for topic, key, value in records:
            future: asyncio.Future[None] = loop.create_future()
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=reporter(future))
            except BufferError as exc:
                for pending in futures:
                    pending.cancel()
                raise DeliveryFailedError("the producer queue is full") from exc
            futures.append(future)
        results = await asyncio.gather(*futures, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise DeliveryFailedError(
                f"{len(failures)} of {len(records)} not confirmed: {failures[0]}"
            )

    def close(self, timeout_s: float = 10.0) -> int:
        """Flush what is queued and stop polling; returns how many records were left."""
        remaining = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join()
        return int(remaining)
