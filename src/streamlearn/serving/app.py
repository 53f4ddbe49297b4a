"""The prediction worker's aiohttp application factory.

``create_serving_app(settings)`` builds the app; its lifecycle starts the telemetry sink and
the follower of ``model.state``/``experiments`` as background tasks and stops them (flushing
telemetry) on shutdown. ``kafka=False`` builds a worker without either (models are then put
into ``app[SERVING].store`` directly): the in-process baseline of the benchmark and tests
that need no broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

import streamlearn
from streamlearn.http_auth import bearer_tokens, token_secrets
from streamlearn.kafka_clients import refuse_a_refused_login
from streamlearn.models.configured import configured_specs
from streamlearn.models.exceptions import SnapshotRejected
from streamlearn.models.keyring import Keyring
from streamlearn.serde import RegistryClient, SchemaSource
from streamlearn.serving import api
from streamlearn.serving.experiments import ExperimentBook
from streamlearn.serving.follower import StateFollower
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore
from streamlearn.serving.openapi import openapi_document
from streamlearn.serving.predictor import Predictor
from streamlearn.serving.shortcut import PREDICT_SHORTCUT, PredictShortcut
from streamlearn.serving.state import SERVING, Serving
from streamlearn.serving.telemetry import TelemetrySink
from streamlearn.settings import Settings
from streamlearn.signing_key_check import WORKER_NEED, require_signing_key

log = logging.getLogger(__name__)


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/v1/")


def create_serving_app(
    settings: Settings,
    registry: SchemaSource | None = None,
    *,
    kafka: bool = True,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    telemetry_producer_config: dict[str, Any] | None = None,
) -> web.Application:
    """A prediction worker's app; ``telemetry_producer_config``: librdkafka settings over
    its telemetry producer's."""
    if kafka:
        require_signing_key(settings, WORKER_NEED)
    middlewares: list[Middleware] = []
    if settings.serve_api_tokens:
        # /v1 is the API; probes, metrics and the OpenAPI document stay open. The
        # middleware's refusals are answered as JSON by errors_as_json around it.
        middlewares += [api.errors_as_json, bearer_tokens(settings.serve_api_tokens, _is_api)]
    else:
        # No middleware at all: handlers answer their own errors as JSON and the last
        # route answers unknown paths (api.no_route), so aiohttp skips its middleware chain.
        log.info("prediction API open: no STREAMLEARN_SERVE_API_TOKENS set")
    app = web.Application(middlewares=middlewares, client_max_size=settings.serve_max_body_bytes)
    specs = configured_specs(settings)
    store = ModelStore(settings.models)
    book = ExperimentBook()
    metrics = ServingMetrics()
    predictor = Predictor(
        store=store,
        book=book,
        metrics=metrics,
        telemetry=None,
        worker_version=settings.serve_worker_version or streamlearn.__version__,
        max_model_age_s=settings.serve_max_model_age_s,
        specs=specs,
    )
    serving = Serving(
        settings=settings,
        store=store,
        book=book,
        metrics=metrics,
        predictor=predictor,
        openapi=openapi_document(settings),
    )
    app[SERVING] = serving
    # Run by ServingRunner (`serve`), predictions skip the router; the route stays for
    # other servers (tests' TestServer) and for paths the shortcut leaves to the router.
    secrets = token_secrets(settings.serve_api_tokens) if settings.serve_api_tokens else None
    app[PREDICT_SHORTCUT] = PredictShortcut(serving, secrets, tuple(middlewares))
    app.router.add_post("/v1/models/{name}:predict", api.predict)
    app.router.add_get("/v1/models", api.json_errors(api.list_models))
    # Not a name with ':': GET of /v1/models/ctr:predict is the predict route's 405.
    app.router.add_get("/v1/models/{name:[^/:]+}", api.json_errors(api.get_model))
    app.router.add_get("/healthz", api.json_errors(api.healthz))
    app.router.add_get("/readyz", api.json_errors(api.readyz))
    app.router.add_get("/metrics", api.json_errors(api.metrics))
    app.router.add_get("/openapi.json", api.json_errors(api.openapi))
    # Last: whatever nothing else matched (any character: "." would not match a newline).
    app.router.add_route("*", r"/{tail:[\s\S]*}", api.no_route)
    if metrics_port is not None:
        # First: the process's probes answer (not ready) while it reads model.state.
        app.cleanup_ctx.append(_own_metrics_port(serving, metrics_host, metrics_port))
    if kafka:
        app.cleanup_ctx.append(_kafka_lifecycle(registry, telemetry_producer_config))
    return app


def _own_metrics_port(
    serving: Serving, host: str, port: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """``/metrics``, ``/healthz`` and ``/readyz`` of this process alone on ``host:port``:
    with ``serve --workers N`` the shared port's answers come from whichever process the
    kernel hands the connection, so Prometheus scrapes each process on its own port."""

    async def door(app: web.Application) -> AsyncIterator[None]:
        own = web.Application()
        own[SERVING] = serving
        own.router.add_get("/metrics", api.json_errors(api.metrics))
        own.router.add_get("/healthz", api.json_errors(api.healthz))
        own.router.add_get("/readyz", api.json_errors(api.readyz))
        runner = web.AppRunner(own, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            yield
        finally:
            await runner.cleanup()

    return door


async def _caught_up_or_late(follower: StateFollower, wait_s: float) -> None:
    """Until ``follower`` has read its topics to where they ended at start, or ``wait_s``
    (0: not at all)."""
    if wait_s <= 0:
        return
    try:
        await asyncio.wait_for(follower.caught_up.wait(), wait_s)
    except TimeoutError:
        log.warning(
            "model.state and experiments not read to their end within %gs: opening the port "
            "now; requests get the fallback until they are",
            wait_s,
        )


def _kafka_lifecycle(
    registry: SchemaSource | None, producer_config: dict[str, Any] | None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        serving = app[SERVING]
        settings = serving.settings
        # Refused credentials: the worker would open its port after the startup wait and
        # answer every user the fallback.
        await asyncio.to_thread(refuse_a_refused_login, settings)
        own_registry = registry is None
        source: SchemaSource = registry or RegistryClient.for_settings(settings)
        sink = TelemetrySink(settings, source, serving.metrics, producer_config=producer_config)
        serving.telemetry = sink
        serving.predictor.telemetry = sink

        def rejected(exc: SnapshotRejected) -> None:
            serving.predictor.alert(
                "snapshot_rejected",
                f"snapshot_rejected:{exc.model_name}",
                str(exc),
                severity="critical",
                model_name=exc.model_name,
                model_version=exc.version,
            )

        follower = StateFollower.from_settings(
            settings,
            source,
            key=Keyring.from_settings(settings),
            specs=serving.predictor.specs,
            store=serving.store,
            book=serving.book,
            metrics=serving.metrics,
            on_rejected=rejected,
        )
        serving.follower = follower
        tasks = [
            asyncio.create_task(sink.run(), name="serve-telemetry"),
            asyncio.create_task(follower.run(), name="serve-follower"),
            asyncio.create_task(sink.watch.run(), name="serve-telemetry-watch"),
        ]
        try:
            # aiohttp opens the port after this startup step: a worker takes requests only
            # once it has the models and experiments published before it started, so that
            # one of several on a port (serve --workers) never answers with the fallback
            # while the others answer with the model. Kafka may be away: then the port opens
            # after the wait, and requests get the fallback until the follower catches up.
            await _caught_up_or_late(follower, settings.serve_startup_wait_s)
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            lost = await sink.close()
            if lost:
                log.warning("%d telemetry records were not delivered at shutdown", lost)
            if own_registry and isinstance(source, RegistryClient):
                source.close()

    return lifecycle
