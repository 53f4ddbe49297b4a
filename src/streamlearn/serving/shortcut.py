"""Prediction requests answered before the Application's router.

aiohttp's ``Application`` finds every request's handler through its router and wraps the
request in what it matched (``Application._handle``: the resolve, the match information,
the ``Expect`` check, the middleware chain). For a constant handler under ``wrk`` that was
about a fifth of the server's CPU per request (82.9 against 64.7 µs, medians of three runs
on 2026-12-06, the same handler behind an ``Application`` and behind aiohttp's low-level
``Server``). Prediction requests are nearly all of a worker's traffic, so the worker's
server hands a request that is exactly ``POST /v1/models/<name>:predict`` straight to
:func:`~streamlearn.serving.api.answer_predict`, and every other request to the
Application as before.

The shortcut answers exactly what the router would have: it takes only paths the
predict route's pattern matches as they are (no percent-escapes, query or unusual
characters, which the router sees decoded; those go through the router), no
``Expect`` header (the Application answers ``100 Continue``), and, when the API has
bearer tokens, only requests carrying one of them (the others get the Application's 401).
It is installed only on an app whose middlewares are the ones it was made for and which
has no ``on_response_prepare`` handlers (:class:`ServingRunner`); an app given others
routes every request through the Application.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from streamlearn.http_auth import bearer_accepted
from streamlearn.serving.api import answer_predict
from streamlearn.serving.state import Serving

ServerHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]

PREDICT_PATH = re.compile(r"/v1/models/([A-Za-z0-9_.@-]+):predict")
"""A raw path the shortcut answers, and the model's name in it: characters a model or arm
name uses, none the router would see otherwise once the path is decoded."""


@dataclass(frozen=True)
class PredictShortcut:
    """What the shortcut needs of a worker app: its state, the API's bearer tokens (None:
    the API is open) and the middlewares the app was built with (the shortcut applies what
    they would have: the tokens)."""

    serving: Serving
    secrets: list[bytes] | None = field(repr=False)  # never in a log line
    middlewares: tuple[Middleware, ...]

    def handler(self, through_app: ServerHandler) -> ServerHandler:
        """The server's request handler: predictions answered here, the rest by
        ``through_app`` (the Application's own handler)."""
        serving, secrets, match = self.serving, self.secrets, PREDICT_PATH.fullmatch

        async def answer(request: web.BaseRequest) -> web.StreamResponse:
            if request.method == hdrs.METH_POST:
                found = match(request.raw_path)
                if (
                    found is not None
                    and hdrs.EXPECT not in request.headers
                    and (secrets is None or bearer_accepted(request, secrets))
                ):
                    # A web.Request: the server makes them with the Application's factory.
                    return await answer_predict(serving, cast(web.Request, request), found[1])
            return await through_app(request)

        return answer


PREDICT_SHORTCUT: web.AppKey[PredictShortcut] = web.AppKey("predict_shortcut", PredictShortcut)


class ServingRunner(web.AppRunner):
    """An ``AppRunner`` whose server takes the app's :class:`PredictShortcut` (when the app
    has one and still only the middlewares it was made for)."""

    async def setup(self) -> None:
        await super().setup()
        shortcut = self.app.get(PREDICT_SHORTCUT)
        server = self.server
        if (
            shortcut is not None
            and server is not None
            and tuple(self.app.middlewares) == shortcut.middlewares
            # Signals the router's requests send, which the shortcut's would not.
            and not self.app.on_response_prepare
        ):
            server.request_handler = shortcut.handler(server.request_handler)
