"""The dashboard as an operator exposes it behind an ingress: a cap on event-stream clients
(503 beyond it, counted), bearer tokens and basic auth from the settings (probes and
/metrics open, secrets never logged), a client that never reads dropped (its slot freed,
the server's memory bounded), and the page in headless Chromium given the credentials.

Real servers on loopback ports 24200-24399; the state is fed directly (no broker needed to
expose a dashboard)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import resource
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import SecretStr

from streamlearn.dashboard.app import create_dashboard_app
from streamlearn.dashboard.context import DASHBOARD
from streamlearn.dashboard.runner import serve_dashboard
from streamlearn.dashboard.state import Decoded
from streamlearn.ports import free_port
from streamlearn.settings import Settings
from tests.integration.browser.support import chromium

PORTS = (24200, 24399)
TOKEN = "dashboard-token-0123456789"
USER = "ops:correct-horse-battery"


def alert(key: str, message: str = "no fresh model") -> Decoded:
    return Decoded(
        "monitoring.alerts",
        {
            "alert_key": key,
            "kind": "stale_model",
            "severity": "critical",
            "message": message,
            "labels": {},
            "source": "test",
            "raised_ts": datetime.now(UTC),
        },
    )


@contextlib.asynccontextmanager
async def dashboard(
    settings: Settings, tick_s: float = 0.05, scrape: tuple[str, ...] = ()
) -> AsyncIterator[tuple[str, web.Application]]:
    """A real dashboard (no Kafka readers) on a port of this area; (URL, app)."""
    app = create_dashboard_app(settings, kafka=False, tick_s=tick_s, scrape=scrape)
    stop = asyncio.Event()
    urls: list[str] = []
    server = asyncio.create_task(
        serve_dashboard(
            app, host="127.0.0.1", port=free_port(within=PORTS), stop=stop, ready=urls.append
        )
    )
    try:
        async with asyncio.timeout(10):
            while not urls:
                await asyncio.sleep(0.01)
        yield urls[0], app
    finally:
        stop.set()
        await server


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def first_event(response: aiohttp.ClientResponse) -> str:
    """The stream's first event (after ``retry:``)."""
    seen = b""
    while b"event: state" not in seen:
        seen += await response.content.readany()
    return seen.decode()


# --- a cap on event-stream clients ------------------------------------------------------


async def test_event_streams_beyond_the_cap_are_refused_with_503_and_counted() -> None:
    async with (
        dashboard(Settings(dashboard_max_event_clients=2)) as (url, _),
        aiohttp.ClientSession() as session,
    ):
        first = await session.get(f"{url}/api/events")
        second = await session.get(f"{url}/api/events")
        await first_event(first)
        await first_event(second)
        refused = await session.get(f"{url}/api/events")
        assert refused.status == 503
        assert refused.headers["Retry-After"].isdigit()
        assert "2 event streams" in await refused.text()
        text = await (await session.get(f"{url}/metrics")).text()
        assert metric(text, "streamlearn_dashboard_sse_refused_total") == 1
        assert metric(text, "streamlearn_dashboard_sse_clients") == 2
        # A page that leaves frees its place.
        first.close()
        async with asyncio.timeout(5):
            while True:
                again = await session.get(f"{url}/api/events")
                if again.status == 200:
                    break
                again.close()
                await asyncio.sleep(0.05)
        await first_event(again)
        again.close()
        second.close()


# --- bearer tokens and basic auth -------------------------------------------------------


@pytest.fixture
def guarded() -> Settings:
    return Settings(dashboard_api_tokens=[SecretStr(TOKEN)], dashboard_users=[SecretStr(USER)])


def basic(user_password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user_password.encode()).decode()}


async def test_credentials_guard_the_page_and_its_api_but_not_the_probes(
    guarded: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with dashboard(guarded) as (url, _), aiohttp.ClientSession() as session:
        for path in ("/", "/api/state", "/api/events", "/static/dashboard.js", "/openapi.json"):
            for headers in (
                {},
                {"Authorization": "Bearer wrong-token-0123456789"},
                basic("ops:wrong"),
                {"Authorization": f"Bearer {TOKEN}x"},
            ):
                async with session.get(url + path, headers=headers) as refused:
                    assert refused.status == 401, (path, headers)
                    challenges = refused.headers.getall("WWW-Authenticate")
                    assert any(c.startswith("Basic ") for c in challenges)
                    assert any(c.startswith("Bearer ") for c in challenges)
                    assert "Content-Security-Policy" in refused.headers
        async with session.get(
            f"{url}/api/state", headers={"Authorization": f"Bearer {TOKEN}"}
        ) as r:
            assert r.status == 200
        async with session.get(f"{url}/", headers=basic(USER)) as r:
            assert r.status == 200
        async with session.get(f"{url}/api/events", headers=basic(USER)) as stream:
            assert stream.status == 200
            await first_event(stream)
        for path in ("/healthz", "/readyz", "/metrics"):
            async with session.get(url + path) as probe:
                assert probe.status in (200, 503), path
                assert probe.status != 401
    logged = caplog.text
    assert TOKEN not in logged
    assert "correct-horse-battery" not in logged


def test_dashboard_credentials_are_secret_and_validated() -> None:
    settings = Settings(dashboard_api_tokens=[SecretStr(TOKEN)], dashboard_users=[SecretStr(USER)])
    assert TOKEN not in repr(settings)
    assert "correct-horse" not in repr(settings)
    with pytest.raises(ValueError, match="user:password"):
        Settings(dashboard_users=[SecretStr("nocolon")])
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(dashboard_api_tokens=[SecretStr("short")])


# --- a client that never reads ----------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


@contextlib.contextmanager
def never_reading_stream(url: str) -> Iterator[socket.socket]:
    """A real socket that asks for /api/events and then never reads (a tiny receive
    buffer, so the server's writes back up at once)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    try:
        yield sock
    finally:
        sock.close()


async def offer_large_deltas(app: web.Application, ticks: int) -> None:
    """Each tick the alerts section changes: ~250 kB a delta (5 MB a second)."""
    state = app[DASHBOARD].state
    for n in range(ticks):
        state.apply([alert(f"k{n}-{i}", "x" * 1000) for i in range(200)])
        await asyncio.sleep(0.05)


async def test_a_client_that_never_reads_costs_the_server_bounded_memory() -> None:
    # No timeout in reach: the stream stays open all along, its writes waiting.
    settings = Settings(dashboard_event_write_timeout_s=3600)
    async with dashboard(settings) as (url, app):
        with never_reading_stream(url):
            await asyncio.sleep(0.3)
            before = rss_bytes()
            await offer_large_deltas(app, 100)  # 25 MB offered, none taken
            grown = rss_bytes() - before
            assert app[DASHBOARD].event_clients == 1
    assert grown < 8 * 1024 * 1024, f"the server's memory grew {grown} bytes"


async def test_a_client_that_never_reads_is_disconnected_and_its_place_freed() -> None:
    settings = Settings(dashboard_max_event_clients=1, dashboard_event_write_timeout_s=1.0)
    async with dashboard(settings) as (url, app), aiohttp.ClientSession() as session:
        with never_reading_stream(url) as sock:
            await offer_large_deltas(app, 40)
            text = await (await session.get(f"{url}/metrics")).text()
            assert metric(text, "streamlearn_dashboard_sse_dropped_total") == 1
            assert metric(text, "streamlearn_dashboard_sse_clients") == 0
            # The place is free again for a page that reads.
            async with session.get(f"{url}/api/events") as stream:
                assert stream.status == 200
                await first_event(stream)
            # The server closed the silent client's connection.
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass


# --- the page in Chromium, given the credentials -----------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.mark.parametrize("how", ["basic", "bearer"])
async def test_the_page_works_live_in_chromium_given_credentials(
    guarded: Settings, browser: Browser, how: str
) -> None:
    options: dict[str, Any] = (
        {"http_credentials": {"username": "ops", "password": "correct-horse-battery"}}
        if how == "basic"
        else {"extra_http_headers": {"Authorization": f"Bearer {TOKEN}"}}
    )
    async with dashboard(guarded, tick_s=0.2) as (url, app):
        context = await browser.new_context(**options)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on(
            "console",
            lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
        )
        response = await page.goto(url + "/")
        assert response is not None
        assert response.status == 200
        await page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'live'"
        )
        # Live data: an alert raised while the page is open arrives over the stream.
        app[DASHBOARD].state.apply([alert("live-one", "raised while the page was open")])
        await page.wait_for_function(
            "() => document.getElementById('alert-list').textContent"
            ".includes('raised while the page was open')"
        )
        await context.close()
        assert problems == []


async def test_a_page_refused_at_the_cap_connects_once_a_place_is_free(browser: Browser) -> None:
    """EventSource gives up for good on an answer that is not 200 (the cap's 503, or a
    proxy's 502 while the dashboard restarts): the page must try again itself."""
    async with dashboard(Settings(dashboard_max_event_clients=1), tick_s=0.2) as (url, _):
        first = await browser.new_context()
        first_page = await first.new_page()
        await first_page.goto(url + "/")
        await first_page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'live'"
        )
        second = await browser.new_context()
        second_page = await second.new_page()
        await second_page.goto(url + "/")
        await second_page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'disconnected'"
        )
        await first.close()
        await second_page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'live'",
            timeout=15_000,
        )
        await second.close()


async def test_the_page_s_counters_match_the_scraped_part_s_metrics(browser: Browser) -> None:
    """What the page says of a part is what the part's own /metrics says: counters summed
    over their label sets (and over time as the part counts on)."""
    registry = CollectorRegistry()
    predictions = Counter("streamlearn_serve_predictions", "", ["model", "arm"], registry=registry)
    predictions.labels(model="ctr", arm="a").inc(1000)
    predictions.labels(model="ctr", arm="b").inc(234)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    part = web.Application()
    part.router.add_get("/metrics", metrics)
    runner = web.AppRunner(part)
    await runner.setup()
    port = free_port(within=PORTS)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    part_url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with (
            dashboard(Settings(), tick_s=0.2, scrape=(f"serve={part_url}",)) as (url, _),
            aiohttp.ClientSession() as session,
        ):
            context = await browser.new_context(locale="en-US")
            page = await context.new_page()
            await page.goto(url + "/")
            figure = page.locator("#counters-figures .figure", has_text="predictions served")
            for expected in (1234, 5678):
                if expected != 1234:
                    predictions.labels(model="ctr", arm="b").inc(expected - 1234)
                own = await (await session.get(part_url)).text()
                said = sum(
                    float(line.split()[-1])
                    for line in own.splitlines()
                    if line.startswith("streamlearn_serve_predictions_total{")
                )
                assert said == expected
                await page.wait_for_function(
                    """([expected]) => [...document.querySelectorAll('#counters-figures .figure')]
                      .some((f) => f.textContent.includes('predictions served')
                        && f.querySelector('.total').textContent === expected)""",
                    arg=[f"{expected:,} total"],
                    timeout=10_000,
                )
            assert await figure.count() == 1
            await context.close()
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def path_prefix_proxy(upstream: str, prefix: str) -> AsyncIterator[str]:
    """A reverse proxy, as an ingress routes a path: ``prefix/...`` to ``upstream/...``
    (the prefix stripped, the answer streamed); its URL."""
    session = aiohttp.ClientSession(auto_decompress=False)

    async def forward(request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        async with session.get(f"{upstream}/{tail}", params=request.query) as answer:
            response = web.StreamResponse(status=answer.status)
            for name in ("Content-Type", "Content-Encoding", "Cache-Control"):
                if name in answer.headers:
                    response.headers[name] = answer.headers[name]
            await response.prepare(request)
            async for chunk in answer.content.iter_any():
                await response.write(chunk)
            return response

    proxy = web.Application()
    proxy.router.add_get(prefix + "/{tail:.*}", forward)
    runner = web.AppRunner(proxy, shutdown_timeout=1)
    await runner.setup()
    port = free_port(within=PORTS)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}{prefix}"
    finally:
        await runner.cleanup()
        await session.close()


async def test_the_page_works_behind_an_ingress_that_routes_a_path_prefix(
    browser: Browser,
) -> None:
    """An ingress often gives the dashboard a path (https://ops.example.com/dashboard/)
    and strips it: the page's files and its stream must be asked for under that path."""
    async with (
        dashboard(Settings(), tick_s=0.2) as (url, app),
        path_prefix_proxy(url, "/dashboard") as proxied,
    ):
        context = await browser.new_context()
        page = await context.new_page()
        missing: list[str] = []
        page.on(
            "response",
            lambda r: missing.append(f"{r.status} {r.url}") if r.status >= 400 else None,
        )
        response = await page.goto(proxied + "/")
        assert response is not None
        assert response.status == 200
        await page.wait_for_function(
            "() => document.getElementById('connection').dataset.state === 'live'",
            timeout=10_000,
        )
        app[DASHBOARD].state.apply([alert("behind-a-proxy", "seen through the ingress")])
        await page.wait_for_function(
            "() => document.getElementById('alert-list').textContent"
            ".includes('seen through the ingress')"
        )
        await context.close()
        assert missing == []
