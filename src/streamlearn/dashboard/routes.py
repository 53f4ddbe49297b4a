"""The dashboard's HTTP endpoints.

``GET /`` the page; ``/static/...`` its script, style and the vendored chart library;
``GET /api/state`` the whole state as JSON; ``GET /api/events`` the same as server-sent
events (the state, then a delta each tick, or a heartbeat when nothing changed);
``/healthz``, ``/readyz``, ``/metrics`` and ``/openapi.json`` (what each answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamlearn.dashboard.context import DASHBOARD
from streamlearn.dashboard.openapi import openapi_document
from streamlearn.dashboard.sse import encode_json, sse_json, sse_retry

log = logging.getLogger(__name__)

RECONNECT_MS = 2000
DOCUMENT = encode_json(openapi_document())


async def index(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[DASHBOARD].index_html, content_type="text/html", charset="utf-8"
    )


async def api_state(request: web.Request) -> web.Response:
    payload, _ = request.app[DASHBOARD].state.full()
    return web.Response(
        text=encode_json(payload),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


async def api_events(request: web.Request) -> web.StreamResponse:
    """The state, then each tick a delta (or a heartbeat), until the client goes, takes
    nothing for ``event_write_timeout_s``, or the dashboard stops. Beyond
    ``max_event_clients`` open streams: 503 (the page tries again)."""
    dashboard = request.app[DASHBOARD]
    state, metrics = dashboard.state, dashboard.metrics
    if dashboard.event_clients >= dashboard.max_event_clients:
        # Each stream holds a connection and a task for as long as the page is open: without
        # a cap, any number of them (a script, a tab left open per viewer) was taken.
        metrics.sse_refused.inc()
        raise web.HTTPServiceUnavailable(
            reason=f"the dashboard serves at most {dashboard.max_event_clients} event streams "
            "at once (STREAMLEARN_DASHBOARD_MAX_EVENT_CLIENTS); try again later",
            headers={"Retry-After": str(math.ceil(RECONNECT_MS / 1000))},
        )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            # Proxies (nginx) would buffer the stream otherwise.
            "X-Accel-Buffering": "no",
        }
    )
    dashboard.event_clients += 1
    metrics.sse_clients.inc()
    try:
        await response.prepare(request)

        async def send(event: str, data: bytes) -> None:
            # A client that reads nothing leaves the write waiting on the socket: memory stays
            # bounded (aiohttp waits once its buffer holds 64 KiB), but the stream held its
            # place, and the cap's, until the dashboard stopped.
            await asyncio.wait_for(response.write(data), dashboard.event_write_timeout_s)
            metrics.sse_events.labels(event=event).inc()

        payload, cursor = state.full()
        await send("state", sse_retry(RECONNECT_MS) + sse_json("state", payload))
        quiet_s = 0.0
        while not dashboard.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(dashboard.closing.wait(), dashboard.tick_s)
            if dashboard.closing.is_set():
                break
            delta, cursor = state.delta(cursor)
            quiet_s += dashboard.tick_s
            if delta is not None:
                await send("delta", sse_json("delta", delta))
                quiet_s = 0.0
            elif quiet_s >= dashboard.heartbeat_s:
                await send("heartbeat", sse_json("heartbeat", {"server_time": state.clock()}))
                quiet_s = 0.0
    except TimeoutError:
        metrics.sse_dropped.inc()
        log.info(
            "dashboard: an event stream's client took nothing for %.0f s; disconnected",
            dashboard.event_write_timeout_s,
        )
        if request.transport is not None:
            request.transport.abort()
    except (ConnectionResetError, ConnectionError):
        log.debug("dashboard: an event stream's client went away")
    finally:
        dashboard.event_clients -= 1
        metrics.sse_clients.dec()
    return response


def _errors(status: dict[str, Any]) -> list[str]:
    """What keeps the dashboard from its topics: reading them, sampling their offsets, or
    none of them existing (another namespace's prefix, topics never applied)."""
    errors = [str(error) for error in (status["error"], status["offsets_error"]) if error]
    if status["missing"] and not status["assigned"]:
        errors.append(
            f"none of the topics it follows exists ({', '.join(status['missing'])}): is the "
            "topic prefix right, and were the topics applied (streamlearn topics apply)?"
        )
    return errors


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while serving, broker or not (a restart brings no broker back)."""
    status = request.app[DASHBOARD].state.section("status")
    return web.json_response(
        {
            "status": "ok",
            "topics": status["assigned"],
            "missing": status["missing"],
            "errors": _errors(status),
        },
        headers={"Cache-Control": "no-store"},
    )


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 503 with the reasons while the topics cannot be read."""
    errors = _errors(request.app[DASHBOARD].state.section("status"))
    body: dict[str, object] = (
        {"status": "not ready", "errors": errors} if errors else {"status": "ready"}
    )
    return web.json_response(
        body, status=503 if errors else 200, headers={"Cache-Control": "no-store"}
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[DASHBOARD].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(_: web.Request) -> web.Response:
    return web.Response(text=DOCUMENT, content_type="application/json")


def add_routes(app: web.Application, static_dir: str) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/api/state", api_state)
    app.router.add_get("/api/events", api_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_static("/static/", static_dir, append_version=False)
