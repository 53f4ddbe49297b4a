"""The collector: ``POST /v1/events`` from browsers and apps → Avro on Kafka.

A request is accepted (202) only once Kafka has confirmed every record of it; a request
with any invalid item is refused whole (400, the field named) and nothing of it is
produced; a body over the limit is 413; a broker that does not confirm in time is 503 with
``Retry-After``. Events go to ``telemetry.events`` keyed by user id, feedback to
``telemetry.feedback`` keyed by request id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp_cors
from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streamlearn import strict_json
from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import map_item, unencodable_field
from streamlearn.collector.openapi import openapi_document
from streamlearn.collector.producer import DeliveryFailedError, NotSentError, QueueFullError
from streamlearn.collector.state import COLLECTOR, Collector
from streamlearn.collector.tag import add_tag_routes
from streamlearn.collector.write_keys import (
    HEADER,
    ForeignAppError,
    MissingWriteKeyError,
    WriteKeys,
    challenge,
    redact_keys_in_server_log,
    stamp_app,
)
from streamlearn.http_auth import RateLimiter, rate_limited
from streamlearn.http_body import UnreadableBodyError, read_body
from streamlearn.http_errors import kept_headers
from streamlearn.json_kinds import json_kind
from streamlearn.serde import EncodeError, RegistryClient, SchemaSource
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
UNENCODABLE = (
    "must be Unicode text: a lone surrogate (a \\ud800-\\udfff escape without its pair) "
    "has no UTF-8 form"
)


def _error(
    status: int,
    message: str,
    field: str | None = None,
    *,
    written: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    if written is not None:
        body["written"] = written
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        collector = request.app[COLLECTOR]
        collector.refused.labels(status="413").inc()
        limit = collector.settings.collector_max_body_bytes
        return _error(413, f"request body over {limit} bytes", "body")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        # The router's 404s and 405s, the rate limit's 429s: refusals like the handler's.
        counting = request.app.get(COLLECTOR)
        if counting is not None:
            counting.refused.labels(status=str(exc.status)).inc()
        if request.method == "OPTIONS" and exc.status == 403 and exc.text:
            # aiohttp_cors says why in the body's text: an origin, a method or a header not
            # listed, or no Origin at all (every OPTIONS is a preflight to it).
            text, field = exc.text, "Origin"
            if "headers" in text:
                field = "Access-Control-Request-Headers"
            elif "request method" in text.lower():
                field = "Access-Control-Request-Method"
            elif "origin header is not specified" in text.lower():
                text = (
                    "OPTIONS is a browser's CORS preflight and needs an Origin header; "
                    "events are posted"
                )
            return _error(403, text, field, headers=kept_headers(exc))
        if exc.status == 404:
            # A page's endpoint without its /v1 (a typo): the answer says where events go.
            return _error(
                404,
                f"no {request.method} {request.path} here: events are posted to /v1/events",
                "path",
            )
        return _error(exc.status, exc.reason, headers=kept_headers(exc))


def _origin_allowed(request: web.Request, settings: Settings) -> bool:
    """A browser's post is from a listed origin or the collector's own (no Origin: not a
    browser's cross-origin request)."""
    origin = request.headers.get("Origin")
    if origin is None or origin in settings.collector_cors_origins:
        return True
    return urlsplit(origin).netloc == request.host


def _check_record_size(collector: Collector, kind: str, size: int, index: int) -> None:
    """An item whose record Kafka would not take is refused, naming it, before anything of
    the request is produced (librdkafka refused it mid-request: a 500, the items before it
    written, and a browser retrying the batch for good)."""
    limit = collector.record_limits[kind]
    if size > limit:
        raise InvalidEventError(
            f"[{index}]",
            f"is {size:,} bytes as a Kafka record, over the {limit:,} a record of "
            f"{collector.topics[kind]} may have (its properties and context are the bulk)",
        )


async def post_events(request: web.Request) -> web.Response:
    collector = request.app[COLLECTOR]
    settings = collector.settings
    if not _origin_allowed(request, settings):
        # A text/plain post (the tag's, a beacon) needs no preflight: refused here, or a
        # page that cannot read the answer would retry, writing the same events again.
        collector.refused.labels(status="403").inc()
        return _error(
            403,
            f"origin {request.headers['Origin']} may not post events: "
            "list it in STREAMLEARN_COLLECTOR_CORS_ORIGINS",
            "Origin",
        )
    key_app = None  # the app whose write key the request carries
    if collector.write_keys is not None:
        try:
            key_app = collector.write_keys.app_of(request)
        except MissingWriteKeyError as exc:
            collector.refused.labels(status="401").inc()
            return _error(401, str(exc), exc.field, headers=challenge())
    try:
        payload = strict_json.loads(await read_body(request))
    except UnreadableBodyError as exc:
        collector.refused.labels(status=str(exc.status)).inc()
        unreadable = _error(exc.status, str(exc), exc.field)
        unreadable.force_close()
        return unreadable
    except (ValueError, UnicodeDecodeError) as exc:
        collector.refused.labels(status="400").inc()
        return _error(400, f"body is not valid JSON: {exc}", "body")
    except RecursionError:
        collector.refused.labels(status="400").inc()
        return _error(400, "body is nested deeper than the collector reads", "body")
    if not isinstance(payload, list | dict):  # `5` was refused as item "[0]"
        collector.refused.labels(status="400").inc()
        return _error(
            400,
            f"body must be an event object or an array of them, got {json_kind(payload)}",
            "body",
        )
    items = payload if isinstance(payload, list) else [payload]
    if not items:
        collector.refused.labels(status="400").inc()
        return _error(400, "no events in the request", "body")
    if len(items) > settings.collector_max_batch:
        collector.refused.labels(status="413").inc()
        return _error(
            413, f"{len(items)} events, at most {settings.collector_max_batch} per request", "body"
        )
    context = collector.context(request)
    records = []
    try:
        for index, item in enumerate(items):
            mapped = map_item(
                item, index, context, reject_unknown=settings.collector_unknown_fields == "reject"
            )
            if key_app is not None:
                stamp_app(mapped, key_app, index)
            value = collector.serdes[mapped.kind].encode(mapped.record)
            key = mapped.key.encode()
            _check_record_size(collector, mapped.kind, len(key) + len(value), index)
            records.append((collector.topics[mapped.kind], key, value, mapped))
    except InvalidEventError as exc:
        collector.refused.labels(status="400").inc()
        return _error(400, exc.problem, exc.field)
    except ForeignAppError as exc:
        collector.refused.labels(status="403").inc()
        return _error(403, exc.problem, exc.field)
    except EncodeError as exc:
        collector.refused.labels(status="400").inc()
        # The mapping checked every field's type; what Avro still refuses is text that is
        # not Unicode (a lone surrogate from a \ud800 escape): named where it is.
        field = unencodable_field(items[index], index)
        if field is None:
            return _error(400, str(exc), "body")
        return _error(400, UNENCODABLE, field)
    accepted = collector.accepted_by_kind

    def confirmed(index: int) -> None:
        accepted[records[index][3].kind].inc()

    try:
        await collector.producer.produce([(t, k, v) for t, k, v, _ in records], confirmed)
    except QueueFullError as exc:
        collector.refused.labels(status="503").inc()
        log.warning("refusing a batch of %d: %s", len(records), exc)
        return _error(
            503,
            "the collector is busy; nothing of the request was written, retry later",
            written="none",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    except NotSentError as exc:
        collector.refused.labels(status="503").inc()
        log.warning("a batch of %d was refused before any was sent: %s", len(records), exc)
        return _error(
            503,
            f"Kafka's client refused the events before sending any ({exc}); nothing of the "
            "request was written, retry later",
            written="none",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    except DeliveryFailedError as exc:
        collector.refused.labels(status="503").inc()
        log.warning("a batch of %d was not confirmed: %s", len(records), exc)
        return _error(
            503,
            "Kafka did not confirm every event; some may be written: retry with the same "
            "event_ids (duplicates are dropped downstream)",
            written="partial",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    collector.accepted_requests.inc()
    return web.json_response(
        {"accepted": len(records), "event_ids": [str(m.record["event_id"]) for *_, m in records]},
        status=202,
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 503 once the producer is stuck (:mod:`streamlearn.producer_watch`)."""
    stalled = request.app[COLLECTOR].watch.stalled
    if stalled is not None:
        return web.json_response({"status": "stalled", "reason": stalled}, status=503)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[COLLECTOR].metrics)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def _is_post_of_events(request: web.Request) -> bool:
    return request.method == "POST" and request.path == "/v1/events"


async def vary_by_origin(request: web.Request, response: web.StreamResponse) -> None:
    """What a post (or its preflight) is answered depends on its Origin (the echoed
    Allow-Origin, or a 403): say so, or a shared cache may give one origin's answer to
    another (aiohttp_cors does not)."""
    if request.path == "/v1/events" and "Origin" not in response.headers.get("Vary", ""):
        response.headers.add("Vary", "Origin")


def readable_by_listed_origins(
    settings: Settings,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """A listed origin may read every answer, not only those of ``/v1/events`` (which
    aiohttp_cors answers): the 404 of a page's mistyped endpoint had no
    ``Access-Control-Allow-Origin``, so the browser hid it and said "blocked by CORS
    policy", sending the site's developer to an origin list that was right."""

    async def allow(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if (
            origin in settings.collector_cors_origins
            and request.method != "OPTIONS"  # preflights are aiohttp_cors's to answer
            and "Access-Control-Allow-Origin" not in response.headers
        ):
            response.headers["Access-Control-Allow-Origin"] = str(origin)
            if "Origin" not in response.headers.get("Vary", ""):
                response.headers.add("Vary", "Origin")

    return allow


def _doors(settings: Settings) -> list[Middleware]:
    """Per-IP rate limits on posts of events, when set (429 with Retry-After)."""
    if settings.collector_rate_limit_per_ip is None:
        return []
    limiter = RateLimiter(settings.collector_rate_limit_per_ip, settings.collector_rate_burst)

    def client_of(request: web.Request) -> str:
        return request.app[COLLECTOR].client_ip(request) or "unknown"

    # Its 429 is counted by errors_as_json, as every refusal raised as an HTTP error.
    return [rate_limited(limiter, client_of, _is_post_of_events)]


async def _no_origin_listed(request: web.Request) -> web.Response:
    """A preflight when no origin is listed: refused as an unlisted origin's is (403)."""
    if "Origin" not in request.headers:  # not a browser's preflight
        raise web.HTTPMethodNotAllowed("OPTIONS", ["POST"])
    request.app[COLLECTOR].refused.labels(status="403").inc()
    return _error(
        403,
        f"origin {request.headers['Origin']} may not post events: "
        "list it in STREAMLEARN_COLLECTOR_CORS_ORIGINS",
        "Origin",
    )


def create_collector_app(
    settings: Settings,
    registry: SchemaSource | None = None,
    *,
    producer_config: dict[str, Any] | None = None,
) -> web.Application:
    """The collector's app; ``producer_config``: librdkafka settings over its producer's."""
    app = web.Application(
        middlewares=[errors_as_json, *_doors(settings)],
        client_max_size=settings.collector_max_body_bytes,
    )
    route = app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    # Read (and checked) before the first request: a bad key file stops the start.
    write_keys = WriteKeys.from_settings(settings)
    if write_keys is None:
        log.warning("collector: no write keys set; anyone may post events")
    else:
        log.info("collector: write keys required (apps: %s)", ", ".join(write_keys.apps))
        redact_keys_in_server_log()
    document = openapi_document(settings, write_keys=write_keys is not None)

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
    add_tag_routes(app)
    app.on_response_prepare.append(vary_by_origin)
    if settings.collector_cors_origins:
        cors = aiohttp_cors.setup(
            app,
            defaults={
                origin: aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
                    allow_headers=("Content-Type", "X-App-Version", HEADER),
                    allow_methods=("POST",),
                    # The tag waits as long as a 503 or 429 asks; it must be able to read it.
                    expose_headers=("Retry-After",),
                )
                for origin in settings.collector_cors_origins
            },
        )
        cors.add(route)
        # After aiohttp_cors's own (which asserts it is the first to set the header).
        app.on_response_prepare.append(readable_by_listed_origins(settings))
    else:
        app.router.add_route("OPTIONS", "/v1/events", _no_origin_listed)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        owned = RegistryClient.for_settings(settings) if registry is None else None
        client = registry if registry is not None else owned
        assert client is not None
        collector = Collector(
            settings, client, write_keys=write_keys, producer_config=producer_config
        )
        # Register (or look up) both schemas before the first request, off the loop.
        for serde in collector.serdes.values():
            await asyncio.to_thread(getattr, serde, "schema_id")
        app[COLLECTOR] = collector
        watching = asyncio.create_task(collector.watch.run(), name="producer-watch")
        try:
            yield
        finally:
            watching.cancel()
            left = await asyncio.to_thread(collector.producer.close)
            if left:
                log.error("%d accepted records were not flushed at shutdown", left)
            if owned is not None:
                owned.close()

    app.cleanup_ctx.append(lifecycle)
    return app
