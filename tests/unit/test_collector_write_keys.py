"""The collector's write keys and CORS allow-list, over HTTP to a collector whose Kafka is
unreachable: everything here is refused before anything is produced (the accepted path,
on the broker, is tests/integration/test_collector_write_keys.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from streamlearn.collector.app import create_collector_app
from streamlearn.collector.mapping import Mapped
from streamlearn.collector.write_keys import (
    ForeignAppError,
    RedactingAccessLogger,
    WriteKeys,
    stamp_app,
)
from streamlearn.exceptions import ConfigurationError
from streamlearn.http_auth import owner_of
from streamlearn.kafka_local import free_port
from streamlearn.serde.memory import InMemoryRegistry
from streamlearn.settings import Settings
from tests.raw_http import post_raw

KEY = "wk-shop-0123456789abcdef"
OTHER_KEY = "wk-app-fedcba9876543210"
EVENT = {"event_type": "page_view", "user_id": "u-1", "app_version": "web-1"}


def keyed_settings(**update: Any) -> Settings:
    return Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",  # nothing listens: nothing is produced
        collector_delivery_timeout_s=1.0,
        collector_write_keys={SecretStr(KEY): "shop-web", SecretStr(OTHER_KEY): "shop-ios"},
        collector_cors_origins=["https://shop.example"],
        **update,
    )


@pytest.fixture
async def collector() -> AsyncIterator[TestClient[Any, Any]]:
    app = create_collector_app(keyed_settings(), InMemoryRegistry())
    async with TestClient(TestServer(app)) as client:
        yield client


async def _refused(client: TestClient[Any, Any]) -> str:
    response = await client.get("/metrics")
    return "\n".join(
        line
        for line in (await response.text()).splitlines()
        if line.startswith("streamlearn_collector_refused_requests_total")
    )


async def test_a_post_without_a_key_or_with_an_unknown_one_is_401(
    collector: TestClient[Any, Any],
) -> None:
    for headers in ({}, {"X-Streamlearn-Write-Key": "wk-guessed"}):
        response = await collector.post("/v1/events", json=EVENT, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'WriteKey realm="streamlearn"'
        body = await response.json()
        assert body["field"] == "X-Streamlearn-Write-Key"
        assert "wk-guessed" not in body["error"]
    response = await collector.post("/v1/events?write_key=wk-guessed", json=EVENT)
    assert response.status == 401
    assert (await response.json())["field"] == "write_key", "where the key was sent"
    # Two keys in one request: which one counts was the first, silently.
    response = await collector.post(f"/v1/events?write_key={KEY}&write_key=wk-2", json=EVENT)
    assert response.status == 401
    body = await response.json()
    assert body == {"error": "send one write key: this request carries 2", "field": "write_key"}
    assert 'status="401"} 4.0' in await _refused(collector)


async def _raw_post(client: TestClient[Any, Any], header: bytes) -> tuple[int, bytes]:
    """A post of ``EVENT`` with one header line sent as these bytes."""
    assert client.port is not None
    body = json.dumps(EVENT).encode()
    return await post_raw(client.host, client.port, "/v1/events", header + b"\r\n", body)


async def test_a_key_that_is_not_utf8_is_401_not_a_server_error(
    collector: TestClient[Any, Any],
) -> None:
    # aiohttp hands such bytes on as lone surrogates, which str.encode() refused: a 500.
    status, body = await _raw_post(collector, b"X-Streamlearn-Write-Key: " + KEY.encode() + b"\xff")
    assert status == 401
    assert json.loads(body)["field"] == "X-Streamlearn-Write-Key"
    assert 'status="401"} 1.0' in await _refused(collector)


async def test_an_item_naming_another_app_than_its_key_is_403_naming_the_field(
    collector: TestClient[Any, Any],
) -> None:
    batch = [
        {**EVENT, "context": {"app": "shop-web"}},  # its own app: fine
        {"request_id": "r-1", "kind": "click", "app_version": "web-1",
         "properties": {"app": "shop-ios"}},
    ]  # fmt: skip
    response = await collector.post(
        "/v1/events", json=batch, headers={"X-Streamlearn-Write-Key": KEY}
    )
    assert response.status == 403
    body = await response.json()
    assert body["field"] == "[1].properties.app"
    assert "shop-web" in body["error"]
    # The browser tag's way: the key as a query parameter (a beacon cannot set headers).
    response = await collector.post(
        f"/v1/events?write_key={OTHER_KEY}", data=json.dumps([{**EVENT, "context": {"app": "x"}}])
    )
    assert response.status == 403
    assert (await response.json())["field"] == "[0].context.app"
    assert 'status="403"} 2.0' in await _refused(collector)


def test_the_keys_app_is_stamped_on_each_item() -> None:
    event = Mapped("event", "u", {"context": {"viewport": "1x1"}})
    feedback = Mapped("feedback", "r", {"properties": {}})
    stamp_app(event, "shop-web", 0)
    stamp_app(feedback, "shop-web", 1)
    assert event.record["context"] == {"viewport": "1x1", "app": "shop-web"}
    assert feedback.record["properties"] == {"app": "shop-web"}
    with pytest.raises(ForeignAppError) as refused:
        stamp_app(Mapped("event", "u", {"context": {"app": "other"}}), "shop-web", 4)
    assert refused.value.field == "[4].context.app"


def test_a_key_is_found_by_comparing_it_with_every_key() -> None:
    keys = [(b"k-1", "a"), (b"k-2", "b")]
    assert owner_of("k-2", keys) == "b"
    assert owner_of("k-", keys) is None
    assert owner_of("", keys) is None


def test_keys_from_a_private_file_join_those_of_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "write-keys.json"
    path.write_text(json.dumps({"wk-from-file-0123": "partner"}))
    path.chmod(0o600)
    keys = WriteKeys.from_settings(keyed_settings(collector_write_keys_file=path))
    assert keys is not None
    assert keys.apps == ["partner", "shop-ios", "shop-web"]
    assert WriteKeys.from_settings(Settings()) is None
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        WriteKeys.from_settings(keyed_settings(collector_write_keys_file=path))
    path.write_text('{"wk-secret-in-a-broken-file": ')
    path.chmod(0o600)
    with pytest.raises(ConfigurationError) as broken:
        create_collector_app(keyed_settings(collector_write_keys_file=path))
    assert "wk-secret" not in str(broken.value)
    for bad, problem in (
        ({"": "partner"}, "at least 16 characters"),
        ({"wk-has a-space-in-it": "partner"}, "no whitespace"),
        ({"wk-short": "partner"}, "at least 16 characters"),
        ({"wk-long-enough-key": " "}, "an app id is not empty"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigurationError, match=problem) as refused:
            WriteKeys.from_settings(keyed_settings(collector_write_keys_file=path))
        assert "wk-" not in str(refused.value), "the key is not shown"


def test_a_key_file_with_no_key_stops_the_start_rather_than_open_the_collector(
    tmp_path: Path,
) -> None:
    # Revoking the last key (removing it from the file) left "{}": the collector started
    # with no keys, saying "anyone may post events", and took every post without a key.
    path = tmp_path / "write-keys.json"
    path.write_text("{}")
    path.chmod(0o600)
    with pytest.raises(ConfigurationError, match="holds no write key") as refused:
        WriteKeys.from_settings(Settings(collector_write_keys_file=path))
    assert "STREAMLEARN_COLLECTOR_WRITE_KEYS_FILE" in str(refused.value)


def test_the_document_declares_the_key_and_its_refusals_only_when_keys_are_set() -> None:
    from streamlearn.collector.openapi import openapi_document

    keyed = openapi_document(Settings(), write_keys=True)
    post = keyed["paths"]["/v1/events"]["post"]
    assert post["security"] == [{"writeKeyHeader": []}, {"writeKeyQuery": []}]
    assert {"401", "403"} <= set(post["responses"])
    schemes = keyed["components"]["securitySchemes"]
    assert schemes["writeKeyHeader"]["name"] == "X-Streamlearn-Write-Key"
    assert schemes["writeKeyQuery"] == {**schemes["writeKeyQuery"], "in": "query"}
    open_post = openapi_document(Settings())["paths"]["/v1/events"]["post"]
    assert "security" not in open_post
    assert "401" not in open_post["responses"]


async def test_cors_preflight_allows_the_write_key_header_for_listed_origins_only(
    collector: TestClient[Any, Any],
) -> None:
    preflight = {
        "Origin": "https://shop.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type, x-streamlearn-write-key",
    }
    response = await collector.options("/v1/events", headers=preflight)
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert response.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = response.headers["Access-Control-Allow-Headers"].lower().split(",")
    assert {"content-type", "x-streamlearn-write-key"} <= {h.strip() for h in allowed}
    assert "Origin" in response.headers.getall("Vary", [""])[0]
    response = await collector.options(
        "/v1/events", headers={**preflight, "Origin": "https://evil.example"}
    )
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Origin" in response.headers.get("Vary", "")
    # Said, naming what is refused: it was a bare {"error": "Forbidden"}.
    refused = await response.json()
    assert refused["field"] == "Origin"
    assert "origin 'https://evil.example' is not allowed" in refused["error"]
    unlisted_header = {**preflight, "Access-Control-Request-Headers": "authorization"}
    response = await collector.options("/v1/events", headers=unlisted_header)
    assert response.status == 403
    refused = await response.json()
    assert refused["field"] == "Access-Control-Request-Headers"
    assert "headers are not allowed: authorization" in refused["error"].lower()
    # Found by a new user: a method not allowed, and an OPTIONS without an Origin, were
    # both said to be the Origin's fault ("origin header is not specified").
    response = await collector.options(
        "/v1/events", headers={**preflight, "Access-Control-Request-Method": "PUT"}
    )
    assert response.status == 403
    refused = await response.json()
    assert refused["field"] == "Access-Control-Request-Method"
    assert "'PUT'" in refused["error"]
    response = await collector.options("/v1/events")
    assert response.status == 403
    refused = await response.json()
    assert refused["field"] == "Origin"
    assert refused["error"] == (
        "OPTIONS is a browser's CORS preflight and needs an Origin header; events are posted"
    )


async def test_every_answer_to_a_post_varies_by_origin(collector: TestClient[Any, Any]) -> None:
    """The answer depends on the Origin (its Allow-Origin header, or a 403): a shared cache
    must not hand one origin's answer to another."""
    for origin in ("https://shop.example", "https://evil.example", None):
        headers = {"Origin": origin} if origin else {}
        response = await collector.post("/v1/events", json=EVENT, headers=headers)
        assert response.status in (401, 403)
        assert "Origin" in response.headers.get("Vary", ""), origin


@pytest.mark.parametrize("name", ["write_key", "Write_Key", "WRITE-KEY"])
async def test_the_access_log_leaves_the_key_out(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    """(Found by a new user: `?Write_Key=<key>`, a client's slip of case, was logged whole.)"""

    async def read_body(request: web.Request) -> web.Response:
        await request.read()  # a request whose body was read can no longer be cloned
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/v1/events", read_body)
    # The runner as `collector serve` makes it (TestServer picks its own access logger).
    runner = web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,
        access_log=logging.getLogger("test.access"),
        access_log_format='%r %s "%{User-Agent}i"',
    )
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with caplog.at_level(logging.INFO, logger="test.access"):
            async with aiohttp.ClientSession() as session:
                url = f"http://127.0.0.1:{port}/v1/events?{name}={KEY}&x=1"
                async with session.post(url, data=b"[]") as response:
                    assert response.status == 202
            await runner.cleanup()
    finally:
        await runner.cleanup()
    assert f"POST /v1/events?{name}=redacted&x=1 HTTP/1.1 202" in caplog.text
    assert KEY not in caplog.text


async def test_a_request_line_aiohttp_cannot_parse_is_logged_without_its_key(
    collector: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp logs such a line whole, at ERROR, with its traceback: the key was in the log.
    reader, writer = await asyncio.open_connection(collector.host, collector.port)
    writer.write(
        b"POST /v1/events?write_key=" + KEY.encode() + b"&x=\xff HTTP/1.1\r\nHost: c\r\n"
        b"Connection: close\r\nContent-Length: 0\r\n\r\n"
    )
    with caplog.at_level(logging.ERROR, logger="aiohttp.server"):
        answer = await reader.read()
    writer.close()
    assert answer.split()[1] == b"400"
    assert "Invalid char in url query" in caplog.text, "the parser's complaint is kept"
    assert "write_key=redacted" in caplog.text
    assert KEY not in caplog.text


def test_the_keys_never_print_with_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys are the mapping's keys, so each must be a secret itself (config show, reprs)."""
    monkeypatch.setenv("STREAMLEARN_COLLECTOR_WRITE_KEYS", json.dumps({KEY: "shop-web"}))
    settings = Settings()
    assert "shop-web" in str(settings)
    assert KEY not in str(settings)
    assert KEY not in repr(settings)
    assert KEY not in " ".join(f"{name} = {value}" for name, value in settings)
