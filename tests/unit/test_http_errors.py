"""Every HTTP server's error middleware keeps what the status requires: a 405's Allow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamlearn.collector.app import errors_as_json as collector_errors
from streamlearn.registry.api import error_middleware as registry_errors
from streamlearn.serving.api import errors_as_json as serving_errors

MIDDLEWARES = {
    "collector": collector_errors,
    "registry": registry_errors,
    "serving": serving_errors,
}
MEDIA = {
    "collector": "application/json",
    # Confluent's registry answers in its own media type, errors too.
    "registry": "application/vnd.schemaregistry.v1+json",
    "serving": "application/json",
}


@pytest.mark.parametrize(("middleware", "media"), [(MIDDLEWARES[n], MEDIA[n]) for n in MIDDLEWARES],
                         ids=list(MIDDLEWARES))  # fmt: skip
async def test_a_405_says_which_methods_are_allowed(
    middleware: Callable[..., Any], media: str
) -> None:
    async def post_only(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[middleware])
    app.router.add_post("/thing", post_only)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/thing")
        assert response.status == 405
        assert response.headers["Allow"] == "POST"  # RFC 9110, section 15.5.6
        assert response.content_type == media
