"""Send telemetry and feedback from an app straight to Kafka.

The same Avro schemas, wire format and registry as the rest of streamlearn; an idempotent
producer with ``acks=all``, so an accepted event is neither lost nor duplicated by retries::

    from streamlearn.client import TelemetryClient

    with TelemetryClient(app_version="shop-web 4.2.0") as telemetry:
        telemetry.event("page_view", user_id="u-42", url="https://shop.example/p/7")
        telemetry.feedback(request_id, "click", user_id="u-42")
    # leaving the block flushes: every event is delivered or an error is raised

Invalid events raise :class:`~streamlearn.serde.EncodeError` naming the field, before
anything is sent. Browsers without Kafka access post the same events to the collector.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from confluent_kafka import KafkaError, Message, Producer

from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import checked_client_time, checked_text
from streamlearn.exceptions import StreamlearnError
from streamlearn.kafka_clients import producer_config as kafka_producer_config
from streamlearn.serde import EncodeError, RegistryClient, SchemaSource
from streamlearn.settings import Settings
from streamlearn.settings_loading import load_settings
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)

FEEDBACK_KINDS = ("impression", "click", "conversion", "value", "dismiss")


class DeliveryError(StreamlearnError):
    """Events were accepted by the client but Kafka did not confirm them in time."""


Timestamp = datetime | int | float | str
_T = TypeVar("_T")


def _timestamp(value: Timestamp | None) -> datetime:
    """A UTC datetime from a datetime, epoch milliseconds or ISO 8601 text (as the
    collector takes them), or now."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return _checked(lambda: checked_client_time(value, datetime.now(UTC)))


def _text(value: object, field: str) -> str | None:
    """``value`` if the collector would take it as required text field ``field``."""
    return _checked(lambda: checked_text(value, field, required=True))


def _checked(check: Callable[[], _T]) -> _T:
    # A text client_ts raised TypeError, 1e30 OverflowError, and an empty user id was
    # sent: the collector's own checks, said as the EncodeError the SDK promises.
    try:
        return check()
    except InvalidEventError as exc:
        raise EncodeError(
            f"invalid record: {exc.field.removeprefix('item.')}: {exc.problem}"
        ) from None


def _event_id(given: str | None) -> str:
    """A new event id, or ``given`` in canonical form; one that is no UUID is refused (the
    schema says uuid: readers decoding it as one could not read the record)."""
    if given is None:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(given))
    except (ValueError, TypeError, AttributeError):
        raise EncodeError(f"invalid record: event_id {given!r} is not a UUID") from None


class TelemetryClient:
    """A producer of ``TelemetryEvent`` and ``Feedback`` records for one app."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        app_version: str,
        producer_config: Mapping[str, Any] | None = None,
        registry: SchemaSource | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.app_version = app_version
        self.delivered = 0
        self.failed = 0
        # A registry passed in is the caller's to close; the one made here is ours.
        self._own_registry: RegistryClient | None = None
        if registry is None:
            registry = self._own_registry = RegistryClient.for_settings(self.settings)
        self._registry = registry
        catalogue = TopicCatalogue.from_settings(self.settings)
        events, feedback = (
            catalogue.topic("telemetry.events"),
            catalogue.topic("telemetry.feedback"),
        )
        self._events_topic, self._feedback_topic = events.name, feedback.name
        self._events = events.serde(self._registry)
        self._feedback = feedback.serde(self._registry)
        config = kafka_producer_config(
            self.settings,
            **{
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                **(producer_config or {}),
            },
        )
        self._producer = Producer(config)

    def event(
        self,
        event_type: str,
        user_id: str,
        *,
        event_id: str | None = None,
        client_ts: Timestamp | None = None,
        session_hint: str | None = None,
        url: str | None = None,
        referrer: str | None = None,
        user_agent: str | None = None,
        ip: str | None = None,
        properties: Mapping[str, str] | None = None,
        context: Mapping[str, str] | None = None,
    ) -> str:
        """Queue one event for ``telemetry.events`` (keyed by user); returns its event id."""
        event_id = _event_id(event_id)
        record = {
            "event_id": event_id,
            "event_type": _text(event_type, "event_type"),
            "user_id": _text(user_id, "user_id"),
            "session_hint": session_hint,
            "client_ts": _timestamp(client_ts),
            "received_ts": datetime.now(UTC),
            "url": url,
            "referrer": referrer,
            "user_agent": user_agent,
            "ip": ip,
            "app_version": self.app_version,
            "properties": dict(properties or {}),
            "context": dict(context or {}),
        }
        self._send(self._events_topic, user_id, self._events.encode(record))
        return event_id

    def feedback(
        self,
        request_id: str,
        kind: str,
        *,
        value: float | None = None,
        user_id: str | None = None,
        event_id: str | None = None,
        client_ts: Timestamp | None = None,
        properties: Mapping[str, str] | None = None,
        user_agent: str | None = None,
    ) -> str:
        """Queue feedback on a served prediction for ``telemetry.feedback`` (keyed by
        request). ``user_agent``: the person's browser's, when known (label-join leaves out
        impressions and clicks a declared crawler's user agent sent)."""
        event_id = _event_id(event_id)
        if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
            raise EncodeError(f"invalid Feedback: value must be a finite number, got {value!r}")
        record = {
            "request_id": _text(request_id, "request_id"),
            "event_id": event_id,
            "kind": kind,
            "value": value,
            "user_id": user_id,
            "client_ts": _timestamp(client_ts),
            "received_ts": datetime.now(UTC),
            "app_version": self.app_version,
            "properties": dict(properties or {}),
            "user_agent": user_agent,
        }
        self._send(self._feedback_topic, request_id, self._feedback.encode(record))
        return event_id

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        log.error("delivery to %s failed: %s", message.topic(), error.str())

    def _send(self, topic: str, key: str, value: bytes, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                break
            except BufferError:
                # The local queue is full: wait for deliveries instead of dropping the event.
                if time.monotonic() > deadline:
                    raise DeliveryError(f"producer queue full for {timeout_s:.0f}s") from None
                self._producer.poll(0.1)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every queued event is confirmed; raise if any was not."""
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise DeliveryError(f"{remaining} event(s) not confirmed by Kafka within {timeout_s}s")
        if self.failed:
            raise DeliveryError(f"{self.failed} event(s) were refused by Kafka (see the log)")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            if self._own_registry is not None:
                self._own_registry.close()

    def __enter__(self) -> TelemetryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
