"""``streamlearn collector serve``: the collector's app on a port, over TLS when configured
(:mod:`streamlearn.http_tls`), its access log without write keys."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from streamlearn.collector.app import create_collector_app
from streamlearn.collector.write_keys import RedactingAccessLogger
from streamlearn.http_tls import server_ssl_context
from streamlearn.kafka_clients import refuse_a_refused_login
from streamlearn.settings import Settings


def run_collector(
    settings: Settings, *, host: str, port: int, print: Callable[..., None] | None = None
) -> None:
    """Serve until SIGINT or SIGTERM (then what was accepted is flushed to Kafka)."""
    ssl_context = server_ssl_context(settings)  # before the app: a bad file stops the start
    # Credentials the brokers refuse would have every post answered 503 while /healthz
    # says ok; a broker that is away is another matter (503s with Retry-After until back).
    refuse_a_refused_login(settings)
    web.run_app(
        create_collector_app(settings), host=host, port=port, print=print,
        ssl_context=ssl_context, access_log_class=RedactingAccessLogger,
    )  # fmt: skip
