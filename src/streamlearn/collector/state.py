"""A collector app's state: its serdes and topics, its producer (and the watch on it), its
metrics, and how it reads a request's client address and context."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import Counter, Gauge

from streamlearn.collector.mapping import RequestContext
from streamlearn.collector.producer import AsyncProducer
from streamlearn.collector.write_keys import WriteKeys
from streamlearn.kafka_clients import DEFAULT_MESSAGE_BYTES
from streamlearn.kafka_clients import producer_config as kafka_producer_config
from streamlearn.process_metrics import part_registry
from streamlearn.producer_watch import ProducerWatch
from streamlearn.runtime.topic_writer import RECORD_OVERHEAD_BYTES
from streamlearn.serde import SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue


class Collector:
    """Per-app state: serdes, producer and metrics."""

    def __init__(
        self,
        settings: Settings,
        registry: SchemaSource,
        *,
        producer_config: dict[str, Any] | None = None,
        write_keys: WriteKeys | None = None,
    ) -> None:
        self.settings = settings
        self.write_keys = write_keys
        catalogue = TopicCatalogue.from_settings(settings)
        destinations = {"event": "telemetry.events", "feedback": "telemetry.feedback"}
        self.topics = {kind: catalogue.topic(topic).name for kind, topic in destinations.items()}
        self.serdes = {
            kind: catalogue.topic(topic).serde(registry) for kind, topic in destinations.items()
        }
        timeout_ms = int(settings.collector_delivery_timeout_s * 1000)
        self.watch = ProducerWatch(settings, self.topics.values())
        self.producer = AsyncProducer(
            kafka_producer_config(
                settings,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "message.timeout.ms": timeout_ms,
                    "delivery.timeout.ms": timeout_ms,
                    **(producer_config or {}),
                },
            ),
            self.watch,
        )
        # The largest key and value of each kind's record that librdkafka takes and the
        # topic keeps (a batch's overhead spared): a larger one is refused as an item.
        self.record_limits = {
            kind: min(
                self.producer.max_message_bytes,
                catalogue.topic(topic).spec.max_message_bytes or DEFAULT_MESSAGE_BYTES,
            )
            - RECORD_OVERHEAD_BYTES
            for kind, topic in destinations.items()
        }
        self.metrics = part_registry()
        self.accepted = Counter(
            "streamlearn_collector_accepted",
            "Records confirmed by Kafka (also those of a request answered 503 or abandoned by "
            "its client: they are in Kafka).",
            ["kind"],
            registry=self.metrics,
        )
        self.accepted_by_kind = {kind: self.accepted.labels(kind=kind) for kind in self.topics}
        self.accepted_requests = Counter(
            "streamlearn_collector_accepted_requests",
            "Requests answered 202: Kafka confirmed every record of them (a request's "
            "records are counted in streamlearn_collector_accepted).",
            registry=self.metrics,
        )
        Gauge(
            "streamlearn_collector_producer_unheard_seconds",
            "How long records have waited with no word from a broker (0: none wait); "
            "/healthz fails once it passes STREAMLEARN_KAFKA_PRODUCER_STALL_S while a new "
            "client reaches the brokers.",
            registry=self.metrics,
        ).set_function(self.watch.waited_s)
        self.refused = Counter(
            "streamlearn_collector_refused_requests",
            "Requests refused, by HTTP status (4xx and a full queue's 503: nothing of them was "
            "produced; a delivery 503: see streamlearn_collector_accepted).",
            ["status"],
            registry=self.metrics,
        )

    def client_ip(self, request: web.Request) -> str | None:
        """The client's address: the peer's, or, when X-Forwarded-For is trusted, the
        address the proxy added to it: the last entry. A client may send the header
        itself, and a proxy appends to what it got, so the first entries are whatever the
        client wrote (taking the first evaded the per-IP limit and stored any text as the
        IP). An entry that is not an IP address leaves the peer's."""
        forwarded = request.headers.get("X-Forwarded-For")
        if self.settings.collector_trust_forwarded_for and forwarded:
            last = forwarded.rsplit(",", 1)[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass
        return request.remote

    def context(self, request: web.Request) -> RequestContext:
        return RequestContext(
            received_ts=datetime.now(UTC),
            ip=self.client_ip(request),
            user_agent=header_text(request, "User-Agent"),
            app_version=header_text(request, "X-App-Version"),
        )


def header_text(request: web.Request, name: str) -> str | None:
    """Header ``name`` as text: UTF-8, or else ISO-8859-1, the charset HTTP allowed in
    headers (RFC 9110, 5.5), which devices and old stacks still send their names in.
    aiohttp hands bytes that are not UTF-8 on as lone surrogates, which Avro cannot write:
    the event was refused, naming the body, although its body was fine."""
    value = request.headers.get(name)
    if value is None:
        return None
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


COLLECTOR: web.AppKey[Collector] = web.AppKey("collector", Collector)
