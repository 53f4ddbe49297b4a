"""The registry's aiohttp application factory and runner."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from streamlearn.http_auth import basic_auth
from streamlearn.registry.api import SERVICE, error_middleware, routes
from streamlearn.registry.service import RegistryService
from streamlearn.registry.store import SchemaLog
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)

# Schemas are small, but a registry must take the largest its clients send.
MAX_REQUEST_BYTES = 8 * 1024 * 1024


def registry_topic(settings: Settings) -> str:
    return TopicCatalogue.from_settings(settings).topic("_schemas").name


def is_write(request: web.Request) -> bool:
    """Registering, deleting and configuring (a lookup and a compatibility test, POSTs
    too, only read)."""
    if request.method in ("PUT", "DELETE"):
        return True
    return (
        request.method == "POST"
        and request.path.startswith("/subjects/")
        and (request.path.endswith("/versions"))
    )


def create_registry_app(settings: Settings) -> web.Application:
    """The registry, reading and writing ``<prefix>_schemas`` on the configured cluster."""
    doors: list[Middleware] = []
    if settings.registry_writers:
        doors.append(basic_auth(settings.registry_writers, is_write))
    else:
        log.info("registry writes open: no STREAMLEARN_REGISTRY_WRITERS set")
    app = web.Application(middlewares=[error_middleware, *doors], client_max_size=MAX_REQUEST_BYTES)
    app.add_routes(routes)

    async def schema_log(app: web.Application) -> AsyncIterator[None]:
        log = SchemaLog(settings, registry_topic(settings))
        await log.start()
        app[SERVICE] = RegistryService(log)
        try:
            yield
        finally:
            await log.stop()

    app.cleanup_ctx.append(schema_log)
    return app
