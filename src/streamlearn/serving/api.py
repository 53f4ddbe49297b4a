"""HTTP handlers of a prediction worker and the middleware that turns errors into JSON."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamlearn.http_body import UnreadableBodyError, read_body, require_json
from streamlearn.http_errors import kept_headers
from streamlearn.serving.exceptions import InvalidRequest
from streamlearn.serving.experiments import NEWEST, base_model
from streamlearn.serving.state import SERVING, Serving
from streamlearn.serving.validation import parse_predict

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)


def error_response(status: int, problem: str, field: str | None) -> web.Response:
    return json_response({"error": problem, "field": field}, status=status)


def answer_error(
    request: web.Request, exc: Exception, serving: Serving | None = None
) -> web.Response:
    """``exc``, raised while handling ``request``, as a JSON error response (a client
    mistake named by its field; anything else a logged 500). An HTTP exception under 400 (a
    redirect) is raised again. ``serving``: the worker's state, for a request the router
    did not see (``request.app`` is the router's answer); else the request's app's."""
    if isinstance(exc, InvalidRequest):
        (serving or request.app[SERVING]).metrics.refused.labels(status=str(exc.status)).inc()
        return error_response(exc.status, exc.problem, exc.field)
    if isinstance(exc, UnreadableBodyError):
        (serving or request.app[SERVING]).metrics.refused.labels(status=str(exc.status)).inc()
        unreadable = error_response(exc.status, str(exc), exc.field)
        unreadable.force_close()
        return unreadable
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        serving = serving or request.app[SERVING]
        serving.metrics.refused.labels(status="413").inc()
        limit = serving.settings.serve_max_body_bytes
        return error_response(413, f"request body over {limit} bytes", "body")
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        # The router's 404/405 and the token check's 401 (WWW-Authenticate kept below).
        counting = serving or request.app.get(SERVING)
        if counting is not None:
            counting.metrics.refused.labels(status=str(exc.status)).inc()
        field = "Authorization" if exc.status == 401 else None
        response = error_response(exc.status, exc.reason, field)
        response.headers.update(kept_headers(exc))
        return response
    # A bug, not a client mistake: logged with its traceback, answered as JSON.
    log.error("%s %s failed", request.method, request.path, exc_info=exc)
    return error_response(500, "internal error", None)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_errors(handler: Handler) -> Handler:
    """``handler`` answering its errors as JSON itself (see :func:`answer_error`)."""

    @functools.wraps(handler)
    async def answering(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Exception as exc:
            return answer_error(request, exc)

    return answering


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors of every handler and of other middlewares (authentication) as JSON: used only
    when the app has another middleware. Without one the app runs none (each handler
    answers its own errors, :func:`no_route` unknown paths): aiohttp's middleware chain
    cost ~6 µs of CPU per request (measured on a bare handler with and without it)."""
    try:
        return await handler(request)
    except Exception as exc:
        return answer_error(request, exc)


async def no_route(request: web.Request) -> web.Response:
    """The last route (any method, any path): a JSON 405 with ``Allow`` for a known path
    asked with another method, else a JSON 404, as the router would have raised them."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            _match, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        return answer_error(request, web.HTTPMethodNotAllowed(request.method, allowed))
    return answer_error(request, web.HTTPNotFound())


def _known(serving: Serving, name: str) -> None:
    if name.endswith(NEWEST):  # what the gate held back: for experiments that ask for it
        raise InvalidRequest(
            404, "name", f"{_shown(name)} is only an experiment arm's model, not an endpoint; "
            f"known: {serving.store.names()}"
        )  # fmt: skip
    if name not in serving.store.configured and serving.store.get(name) is None:
        raise InvalidRequest(
            404, "name", f"no model {_shown(name)}; known: {serving.store.names()}"
        )


SHOWN_NAME_CHARS = 64


def _shown(name: str) -> str:
    """A name from the path as an error says it: a long one cut (one of 5,000 characters
    came back whole)."""
    if len(name) <= SHOWN_NAME_CHARS:
        return repr(name)
    return f"{name[:SHOWN_NAME_CHARS]!r}... ({len(name)} characters)"


async def predict(request: web.Request) -> web.Response:
    """The predict route, when the Application's router found it (see
    :mod:`streamlearn.serving.shortcut` for the way most predictions come)."""
    return await answer_predict(request.app[SERVING], request, request.match_info["name"])


async def answer_predict(serving: Serving, request: web.Request, name: str) -> web.Response:
    """``POST /v1/models/{name}:predict``: the answer, errors included (as JSON)."""
    started = time.perf_counter()
    try:
        _known(serving, name)
        require_json(request)
        raw = await read_body(request)
        # Strings for features read as numbers are refused while parsing (one pass); no
        # await between here and predict(), so the experiment cannot change in between.
        predictor = serving.predictor
        numeric = predictor.numeric_features(name, serving.book.covering(name))
        instances, request_id, batch = parse_predict(
            raw, serving.settings.serve_max_instances, numeric
        )
        body = predictor.predict(
            name, instances, request_id, started, batch=batch, numbers_checked=True
        )
        response = json_response(body)
        serving.latency(name).observe(time.perf_counter() - started)
        return response
    except Exception as exc:  # answered here: the predict path runs no middleware
        return answer_error(request, exc, serving)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def model_info(serving: Serving, name: str) -> dict[str, Any]:
    served = serving.store.get(name)
    info: dict[str, Any] = {
        "name": name,
        "loaded": served is not None,
        "configured": name in serving.store.configured,
    }
    if serving.predictor.specs.get(base_model(name)) is not None:
        # What a predict request refuses as a string, under the experiment covering it too.
        numeric = serving.predictor.numeric_features(name, serving.book.covering(name))
        info["numeric_features"] = sorted(numeric)
    if served is not None:
        loaded = served.loaded
        info.update(
            version=loaded.version,
            parent_version=loaded.parent_version,
            created_ts=_iso(served.created_s),
            age_s=max(0.0, time.time() - served.created_s),
            loaded_at=_iso(served.loaded_at),
            published_ts=None if served.published_s is None else _iso(served.published_s),
            freshness_ms=(
                None if served.freshness_s is None else round(served.freshness_s * 1000, 1)
            ),
            trained_examples=loaded.trained_examples,
            metrics=loaded.metrics,
            spec=loaded.spec.name,
        )
    return info


async def list_models(request: web.Request) -> web.Response:
    serving = request.app[SERVING]
    return json_response({"models": [model_info(serving, n) for n in serving.store.names()]})


async def get_model(request: web.Request) -> web.Response:
    serving = request.app[SERVING]
    name = request.match_info["name"]
    _known(serving, name)
    return json_response(model_info(serving, name))


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 503 once the telemetry producer is stuck (:mod:`streamlearn.producer_watch`:
    every prediction's record would be lost until the process is restarted)."""
    sink = request.app[SERVING].telemetry
    if sink is not None and sink.watch.stalled is not None:
        return json_response({"status": "stalled", "reason": sink.watch.stalled}, status=503)
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    serving = request.app[SERVING]
    # Never published models do not count: a fresh install's fallback answers are what
    # produce the examples the first model is trained on (docs/serving.md).
    caught_up = serving.caught_up()
    if caught_up:
        missing, unpublished = serving.store.missing(), serving.store.unpublished()
    else:
        # Whether a model was published is known once model.state is read: until then
        # every model not loaded is missing.
        missing, unpublished = serving.store.not_loaded(), []
    ready = caught_up and not missing
    return json_response(
        {
            "status": "ready" if ready else "not_ready",
            "missing": missing,
            "unpublished": unpublished,
            "caught_up": caught_up,
        },
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    serving = request.app[SERVING]
    now = time.time()
    for name in serving.store.names():
        served = serving.store.get(name)
        if served is not None:
            serving.metrics.model_age.labels(model=name).set(now - served.created_s)
    body = generate_latest(serving.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[SERVING].openapi)
