"""The HTTP doors: bearer tokens, basic auth and per-client rate limits (no broker)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from streamlearn.http_auth import RateLimiter, basic_auth, bearer_tokens, rate_limited
from streamlearn.http_errors import kept_headers
from streamlearn.registry.app import is_write
from streamlearn.serving import create_serving_app
from streamlearn.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_the_rate_and_tells_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.5), "one token comes every 1/rate s"
    assert limiter.wait_s("b") == 0.0, "clients have their own buckets"
    clock.now += 0.5
    assert limiter.wait_s("a") == 0.0
    clock.now += 10
    assert [limiter.wait_s("a") for _ in range(4)][-1] > 0, "refilled to the burst, no more"


def test_the_buckets_are_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, max_clients=2, clock=clock)
    limiter.wait_s("a")
    limiter.wait_s("b")
    limiter.wait_s("c")  # drops "a", the least recently seen
    assert limiter.wait_s("a") == 0.0, "a dropped client starts with a full bucket"
    assert limiter.wait_s("c") > 0


@web.middleware
async def as_json(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return web.json_response(
            {"error": exc.reason}, status=exc.status, headers=kept_headers(exc)
        )


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _app(*doors: Any) -> web.Application:
    app = web.Application(middlewares=[as_json, *doors])
    app.router.add_get("/open", ok)
    app.router.add_get("/v1/x", ok)
    app.router.add_post("/v1/x", ok)
    return app


@pytest.fixture
async def guarded() -> AsyncIterator[TestClient[Any, Any]]:
    doors = [
        bearer_tokens([SecretStr("t-one"), SecretStr("t-two")], lambda r: r.method == "GET"
                      and r.path.startswith("/v1/")),
        basic_auth([SecretStr("writer:s3cret")], lambda r: r.method == "POST"),
    ]  # fmt: skip
    async with TestClient(TestServer(_app(*doors))) as client:
        yield client


async def test_bearer_tokens_guard_what_they_are_asked_to(
    guarded: TestClient[Any, Any],
) -> None:
    assert (await guarded.get("/open")).status == 200
    refused = await guarded.get("/v1/x")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="streamlearn"'
    assert "bearer token" in (await refused.json())["error"]
    for header in ("Bearer nope", "Basic t-one", "t-one", "Bearer "):
        assert (await guarded.get("/v1/x", headers={"Authorization": header})).status == 401
    for token in ("t-one", "t-two"):
        answer = await guarded.get("/v1/x", headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 200


async def test_a_token_that_is_not_utf8_is_refused_not_a_server_error(
    guarded: TestClient[Any, Any],
) -> None:
    # aiohttp's client sends text headers only: these bytes go out on a socket of their own.
    # The server hands them on as lone surrogates, which str.encode() refused: a 500.
    reader, writer = await asyncio.open_connection(guarded.host, guarded.port)
    writer.write(
        b"GET /v1/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer t-one\xff\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    assert answer.split()[1] == b"401"


async def test_basic_auth_wants_a_configured_writer(guarded: TestClient[Any, Any]) -> None:
    def basic(text: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    refused = await guarded.post("/v1/x")
    assert refused.status == 401
    assert refused.headers["WWW-Authenticate"].startswith('Basic realm="streamlearn"')
    for wrong in (basic("writer:wrong"), basic("other:s3cret"), {"Authorization": "Basic !!"}):
        assert (await guarded.post("/v1/x", headers=wrong)).status == 401
    assert (await guarded.post("/v1/x", headers=basic("writer:s3cret"))).status == 200


async def test_a_rate_limited_client_gets_429_with_retry_after() -> None:
    clock = Clock()
    limited: list[str] = []
    door = rate_limited(
        RateLimiter(rate=0.25, burst=2, clock=clock),
        lambda r: r.headers.get("X-Client", "?"),
        lambda r: r.path.startswith("/v1/"),
        lambda r: limited.append(r.path),
    )
    async with TestClient(TestServer(_app(door))) as client:
        statuses = [(await client.get("/v1/x", headers={"X-Client": "a"})).status for _ in range(2)]
        assert statuses == [200, 200]
        third = await client.get("/v1/x", headers={"X-Client": "a"})
        assert third.status == 429
        assert third.headers["Retry-After"] == "4", "whole seconds, rounded up"
        assert (await client.get("/v1/x", headers={"X-Client": "b"})).status == 200
        for _ in range(5):
            assert (await client.get("/open")).status == 200
        assert limited == ["/v1/x"]


def test_the_registry_guards_registering_deleting_and_configuring_only() -> None:
    from aiohttp.test_utils import make_mocked_request

    def write(method: str, path: str) -> bool:
        return is_write(make_mocked_request(method, path))

    assert write("POST", "/subjects/t-value/versions")
    assert write("DELETE", "/subjects/t-value")
    assert write("DELETE", "/subjects/t-value/versions/1")
    assert write("PUT", "/config")
    assert write("PUT", "/config/t-value")
    assert not write("POST", "/subjects/t-value"), "a lookup only reads"
    assert not write("POST", "/compatibility/subjects/t-value/versions/latest")
    assert not write("GET", "/subjects")


async def test_the_prediction_api_wants_a_token_when_tokens_are_set() -> None:
    settings = Settings(models=["ctr"], serve_api_tokens=[SecretStr("serve-token-abcdef")])
    async with TestClient(TestServer(create_serving_app(settings, kafka=False))) as client:
        refused = await client.get("/v1/models")
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert set(await refused.json()) == {"error", "field"}
        allowed = await client.get(
            "/v1/models", headers={"Authorization": "Bearer serve-token-abcdef"}
        )
        assert allowed.status == 200
        for open_path in ("/healthz", "/metrics", "/openapi.json"):
            assert (await client.get(open_path)).status == 200, open_path
