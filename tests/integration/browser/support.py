"""What the browser tag's tests share: a customer's site, a collector on the embedded broker,
pages that load the tag, and readers of what reached Kafka.

The test pages are served from another origin than the collector's (another port), so every
request the tag makes is a cross-origin one, as on a customer's site.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, Request, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

from streamlearn.collector.app import create_collector_app
from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.agent_workers import Workers, read_topic, running

CHROMIUM = Path("/usr/bin/chromium")
# Preprocess filters HeadlessChrome as a bot, as it should; the page poses as a desktop one.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
TAG = files("streamlearn.collector").joinpath("static/streamlearn.js").read_bytes()
QUEUE_STUB = (
    "<script>window.streamlearn=window.streamlearn||function(){"
    "(streamlearn.q=streamlearn.q||[]).push(arguments)};</script>"
)


def shop_page(title: str, tag_url: str, attributes: dict[str, str], script: str = "") -> str:
    data = " ".join(f"data-{k}='{v}'" for k, v in attributes.items())
    return f"""<!doctype html><html><head><title>{title}</title></head><body>
<div id="top" data-streamlearn-request-id="req-top" data-streamlearn-slot="hero"
     style="height:200px">recommended for you</div>
<div style="height:3000px"></div>
<div id="below" data-streamlearn-request-id="req-below" style="height:200px">more</div>
<div style="height:3000px"></div>
<div id="never" data-streamlearn-request-id="req-never" style="height:200px">never seen</div>
{QUEUE_STUB}{script}
<script async src="{tag_url}" {data}></script>
</body></html>"""


@dataclass
class Site:
    """The customer's site: pages, a self-hosted copy of the tag, and a gate in front of the
    collector that can pretend the answer was lost, fail, or hold requests."""

    url: str = ""
    pages: dict[str, str] = field(default_factory=dict)
    collector_url: str = ""
    lose_answers: int = 0  # forward this many requests, then answer 503 instead of 202
    fail_posts: int = 0  # answer this many requests 503 (Retry-After: 1) without forwarding
    held: asyncio.Event | None = None  # when set: later requests wait until it is set
    seen: list[tuple[float, list[str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            return web.Response(
                text=self.pages[request.match_info["name"]], content_type="text/html"
            )

        async def tag(_: web.Request) -> web.Response:
            return web.Response(body=TAG, content_type="text/javascript")

        async def gate(request: web.Request) -> web.Response:
            body = await request.read()
            self.seen.append((time.monotonic(), [i["event_id"] for i in json.loads(body)]))
            if self.fail_posts > 0:
                self.fail_posts -= 1
                return web.json_response(
                    {"error": "busy"}, status=503, headers={"Retry-After": "1"}
                )
            if self.held is not None:
                await self.held.wait()
            async with (
                aiohttp.ClientSession() as session,
                # The browser's user agent goes on (aiohttp's would be filtered as a bot).
                session.post(
                    f"{self.collector_url}/v1/events",
                    data=body,
                    headers={"User-Agent": request.headers["User-Agent"]},
                ) as answer,
            ):
                text = await answer.text()
                if self.lose_answers > 0 and answer.status == 202:
                    self.lose_answers -= 1
                    return web.json_response(
                        {"error": "lost"}, status=503, headers={"Retry-After": "1"}
                    )
                return web.Response(text=text, status=answer.status)

        app = web.Application()
        app.router.add_get("/pages/{name}", page)
        app.router.add_get("/tag.js", tag)
        app.router.add_post("/gate/v1/events", gate)
        return app


@dataclass
class Collector:
    settings: Settings
    registry: RegistryClient
    port: int = field(default_factory=free_port)
    runner: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(create_collector_app(self.settings, self.registry))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        await self.runner.cleanup()
        self.runner = None


async def new_page(browser: Browser, init_script: str | None = None) -> Page:
    context = await browser.new_context(
        user_agent=DESKTOP_CHROME,
        timezone_id="Europe/Berlin",
        locale="de-DE",
        viewport={"width": 1024, "height": 700},
        device_scale_factor=2,
    )
    if init_script:
        await context.add_init_script(init_script)
    page = await context.new_page()
    _watch_posts(page)
    return page


# What each page's posts of events came to, for the message of a wait that times out: a
# tag that stops sending under load is otherwise one line, "Timeout 60000ms exceeded".
_POSTS: weakref.WeakKeyDictionary[Page, list[str]] = weakref.WeakKeyDictionary()


def _watch_posts(page: Page) -> None:
    posts = _POSTS.setdefault(page, [])
    started = time.monotonic()

    def said(request: Request, outcome: str) -> None:
        if request.method == "POST":
            body = len(request.post_data_buffer or b"")
            at = time.monotonic() - started
            posts.append(f"{at:7.2f} s  {request.url}  {body} bytes: {outcome}")

    page.on("response", lambda response: said(response.request, str(response.status)))
    page.on("requestfailed", lambda request: said(request, f"failed, {request.failure}"))


async def wait_for_tag(page: Page, expression: str, timeout_ms: float = 60000) -> None:
    """Wait until the expression holds in the page, checked every 100 ms (not on
    animation frames, which a busy headless browser may hold back); on a timeout, fail
    with the tag's counters and what each post of events came to."""
    try:
        await page.wait_for_function(expression, polling=100, timeout=timeout_ms)
    except PlaywrightTimeoutError:
        stats = await page.evaluate("window.streamlearn ? streamlearn.stats() : null")
        posts = "\n".join(_POSTS.get(page, [])) or "(none)"
        pytest.fail(
            f"{expression!r} did not hold within {timeout_ms / 1000:.0f} s; "
            f"the tag's stats: {stats}; its posts:\n{posts}"
        )


def read_records(
    settings: Settings, registry: RegistryClient, topic: str, schema: str, done: Callable[..., bool]
) -> list[dict[str, Any]]:
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + topic, schema)
    records: list[dict[str, Any]] = []

    def enough(messages: list[Any]) -> bool:
        records[:] = [serde.decode(m.value()) for m in messages]
        return done(records)

    messages = read_topic(settings, topic, enough, 60)
    return [serde.decode(m.value()) for m in messages]


async def read_events(
    settings: Settings, registry: RegistryClient, done: Callable[..., bool]
) -> Any:
    return await asyncio.to_thread(
        read_records, settings, registry, "telemetry.events", "TelemetryEvent", done
    )


async def read_feedback(
    settings: Settings, registry: RegistryClient, done: Callable[..., bool]
) -> Any:
    return await asyncio.to_thread(
        read_records, settings, registry, "telemetry.feedback", "Feedback", done
    )


async def clean_event_ids(settings: Settings, registry: RegistryClient, count: int) -> list[str]:
    """Event ids in ``events.clean`` once a preprocess worker has read ``telemetry.events``
    (and a second more, so a copy would show)."""
    with running(Workers(settings, only="preprocess"), 1):
        clean = await asyncio.to_thread(
            read_topic, settings, "events.clean", lambda m: len(m) >= count
        )
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + "events.clean", "CleanEvent")
    return [str(serde.decode(m.value())["event_id"]) for m in clean]


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (its own download cannot work
    here); a clear failure naming the install step when it is missing."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/bootstrap (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        await browser.close()
