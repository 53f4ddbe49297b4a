"""streamlearn.js in a real browser (Debian's Chromium, driven by Playwright) against a real
collector on the embedded broker: what the tag sends, when, and that nothing is lost.

The test pages are served from another origin than the collector's (another port), so every
request the tag makes is a cross-origin one, as on a customer's site.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright
from pydantic import SecretStr

from streamlearn.collector.app import create_collector_app
from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.agent_workers import Workers, read_topic, running
from tests.support import serve_app

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


def _page(title: str, tag_url: str, attributes: dict[str, str], script: str = "") -> str:
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
    collector that can pretend the answer was lost."""

    url: str = ""
    pages: dict[str, str] = field(default_factory=dict)
    collector_url: str = ""
    lose_answers: int = 0  # forward this many requests, then answer 503 instead of 202
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


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    runner, site.url = await serve_app(site.app())
    yield site
    await runner.cleanup()


@pytest.fixture
def settings(system_settings: Settings, site: Site, tmp_path: Path) -> Settings:
    return system_settings.model_copy(
        update={"collector_cors_origins": [site.url], "data_dir": tmp_path}
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


@pytest.fixture
async def collector(
    settings: Settings, registry: RegistryClient, site: Site
) -> AsyncIterator[Collector]:
    collector = Collector(settings, registry)
    await collector.start()
    site.collector_url = collector.url
    yield collector
    if collector.runner is not None:
        await collector.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run ./scripts/bootstrap (apt-get install chromium)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        await browser.close()


async def _new_page(browser: Browser, init_script: str | None = None) -> Page:
    context = await browser.new_context(
        user_agent=DESKTOP_CHROME,
        timezone_id="Europe/Berlin",
        locale="de-DE",
        viewport={"width": 1024, "height": 700},
        device_scale_factor=2,
    )
    if init_script:
        await context.add_init_script(init_script)
    return await context.new_page()


def _records(
    settings: Settings, registry: RegistryClient, topic: str, schema: str, done: Callable[..., bool]
) -> list[dict[str, Any]]:
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + topic, schema)
    records: list[dict[str, Any]] = []

    def enough(messages: list[Any]) -> bool:
        records[:] = [serde.decode(m.value()) for m in messages]
        return done(records)

    messages = read_topic(settings, topic, enough, 60)
    return [serde.decode(m.value()) for m in messages]


async def _events(settings: Settings, registry: RegistryClient, done: Callable[..., bool]) -> Any:
    return await asyncio.to_thread(
        _records, settings, registry, "telemetry.events", "TelemetryEvent", done
    )


async def _feedback(settings: Settings, registry: RegistryClient, done: Callable[..., bool]) -> Any:
    return await asyncio.to_thread(
        _records, settings, registry, "telemetry.feedback", "Feedback", done
    )


async def _clean_event_ids(settings: Settings, registry: RegistryClient, count: int) -> list[str]:
    """Event ids in ``events.clean`` once a preprocess worker has read ``telemetry.events``
    (and a second more, so a copy would show)."""
    with running(Workers(settings, only="preprocess"), 1):
        clean = await asyncio.to_thread(
            read_topic, settings, "events.clean", lambda m: len(m) >= count
        )
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + "events.clean", "CleanEvent")
    return [str(serde.decode(m.value())["event_id"]) for m in clean]


async def test_the_collector_serves_the_tag_cacheable_and_versioned(collector: Collector) -> None:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(f"{collector.url}/streamlearn.js") as answer:
            assert answer.status == 200
            assert answer.headers["Content-Encoding"] == "gzip"
            assert answer.headers["Cache-Control"] == "public, max-age=3600"
            assert answer.content_type == "text/javascript"
            body = gzip.decompress(await answer.read())
            etag = answer.headers["ETag"]
        assert body == TAG
        version = TAG.split(b" ")[2].decode()
        async with session.get(
            f"{collector.url}/streamlearn.js", headers={"If-None-Match": etag}
        ) as answer:
            assert answer.status == 304
        async with session.get(f"{collector.url}/streamlearn-{version}.js") as answer:
            assert answer.status == 200
            assert "immutable" in answer.headers["Cache-Control"]
        async with session.get(f"{collector.url}/streamlearn-0.0.0-old.js") as answer:
            assert answer.status == 404
        for refusing in ("gzip;q=0, identity", "identity", "br", "*;q=0"):
            async with session.get(
                f"{collector.url}/streamlearn.js", headers={"Accept-Encoding": refusing}
            ) as answer:
                assert "Content-Encoding" not in answer.headers, refusing
                assert await answer.read() == TAG
        async with session.get(
            f"{collector.url}/streamlearn.js", headers={"Accept-Encoding": "br, *;q=0.5"}
        ) as answer:
            assert answer.headers["Content-Encoding"] == "gzip"


async def test_page_views_impressions_clicks_and_custom_events_arrive_with_their_context(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.pages["shop"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {
            "app-version": "shop-web-2.3",
            "arms": '{"ranker": "b"}',
            "impression-ms": "400",
            "flush-ms": "200",
        },
        "<script>streamlearn('track', 'add_to_cart', {sku: 'X-1', quantity: 2});</script>",
    )
    page = await _new_page(browser)
    await page.goto(f"{site.url}/pages/shop?from=test", referer="https://search.example/")
    await page.wait_for_function("window.streamlearn && window.streamlearn.stats")
    await page.wait_for_timeout(800)  # the first slot has been visible for the dwell time
    # Scrolled past before the dwell time: not an impression.
    await page.evaluate("document.getElementById('never').scrollIntoView()")
    await page.wait_for_timeout(100)
    await page.evaluate("document.getElementById('below').scrollIntoView()")
    await page.wait_for_timeout(800)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.click("#top")
    # The user signs in and buys: the site's own id from now on, a conversion with a value.
    await page.evaluate(
        "streamlearn('set', {userId: 'customer-42'});"
        "streamlearn('feedback', 'req-top', 'conversion', 12.5)"
    )
    await page.wait_for_function(
        "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 6"
    )

    events = await _events(settings, registry, lambda r: len(r) >= 2)
    feedback = await _feedback(settings, registry, lambda r: len(r) >= 4)
    by_type = {e["event_type"]: e for e in events}
    assert sorted(by_type) == ["add_to_cart", "page_view"], events
    view = by_type["page_view"]
    assert view["url"] == f"{site.url}/pages/shop?from=test"
    assert view["referrer"] == "https://search.example/"
    assert view["properties"] == {"title": "Shop"}
    assert view["app_version"] == "shop-web-2.3"
    assert view["user_agent"] == DESKTOP_CHROME  # the collector's, from the request
    assert view["context"]["viewport"] == "1024x700"
    assert view["context"]["dpr"] == "2"
    assert view["context"]["tz"] == "Europe/Berlin"
    assert view["context"]["language"] == "de-DE"
    assert view["context"]["arm.ranker"] == "b"
    assert view["context"]["tag"] == TAG.split(b" ")[2].decode()
    assert view["session_hint"]
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert view["user_id"] == cookies["sl_uid"]
    assert view["session_hint"] == cookies["sl_sid"]
    assert by_type["add_to_cart"]["properties"] == {"sku": "X-1", "quantity": "2"}
    assert all(e["user_id"] == view["user_id"] for e in events)
    by_kind = {(f["kind"], f["request_id"]): f for f in feedback}
    assert sorted(by_kind) == [
        ("click", "req-top"),
        ("conversion", "req-top"),
        ("impression", "req-below"),
        ("impression", "req-top"),
    ]
    assert by_kind["impression", "req-top"]["properties"] == {"slot": "hero"}
    assert by_kind["click", "req-top"]["properties"] == {"slot": "hero"}
    assert by_kind["conversion", "req-top"]["value"] == 12.5
    assert by_kind["conversion", "req-top"]["user_id"] == "customer-42"
    seen_and_clicked = [by_kind[k] for k in by_kind if k[0] != "conversion"]
    assert all(f["user_id"] == view["user_id"] for f in seen_and_clicked)
    assert len({r["event_id"] for r in events + feedback}) == 6


async def test_events_queued_while_the_collector_is_down_arrive_once_it_returns(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    await collector.stop()
    attributes = {
        "app-version": "shop-web-2.3",
        "endpoint": f"{collector.url}/v1/events",
        "flush-ms": "100",
        "impression-ms": "200",
    }
    for name in ("one", "two"):
        site.pages[name] = _page(name, f"{site.url}/tag.js", attributes)
    page = await _new_page(browser)
    await page.goto(f"{site.url}/pages/one")
    await page.wait_for_function("window.streamlearn && streamlearn.stats")
    await page.evaluate("streamlearn('track', 'search', {q: 'shoes'})")
    await page.wait_for_function("streamlearn.stats().queued >= 3")  # view, search, impression
    # A new page load: the first page's queue survives in localStorage and is adopted.
    await page.goto(f"{site.url}/pages/two")
    await page.wait_for_function("window.streamlearn && streamlearn.stats().queued >= 4")
    stored = await page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('streamlearn.outbox.')).length"
    )
    assert stored >= 1
    assert (await page.evaluate("streamlearn.stats().sent")) == 0

    await collector.start()
    await page.wait_for_function("streamlearn.stats().queued === 0", timeout=90000)
    events = await _events(settings, registry, lambda r: len(r) >= 3)
    assert sorted(e["event_type"] for e in events) == ["page_view", "page_view", "search"]
    # Each page load showed the first slot long enough: two impressions, two event ids.
    feedback = await _feedback(settings, registry, lambda r: len(r) >= 2)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("impression", "req-top")] * 2
    assert len({r["event_id"] for r in events + feedback}) == 5
    # Whatever was sent twice on the way (a fetch cut off by the page load, a beacon), the
    # preprocess agent keeps each event once.
    clean = await _clean_event_ids(settings, registry, 3)
    assert sorted(clean) == sorted(str(e["event_id"]) for e in events)


async def test_a_lost_answer_is_retried_after_retry_after_and_preprocess_keeps_one_copy(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.lose_answers = 1
    site.pages["shop"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {
            "app-version": "shop-web-2.3",
            "endpoint": f"{site.url}/gate/v1/events",
            "flush-ms": "100",
        },
    )
    page = await _new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await page.wait_for_function(
        "window.streamlearn && streamlearn.stats().sent >= 1 && streamlearn.stats().queued === 0",
        timeout=30000,
    )
    (first_at, first_ids), (second_at, second_ids) = site.seen[:2]
    # The retry carries the same events with the same ids (and what was queued since).
    assert second_ids[: len(first_ids)] == first_ids
    assert second_at - first_at >= 1.0, "not before the Retry-After the collector asked for"
    views = first_ids[:1]  # the page view; its copy was written before the "lost" answer
    events = await _events(settings, registry, lambda r: len(r) >= 2)
    assert [str(e["event_id"]) for e in events] == views * 2, "both copies reached Kafka"

    assert await _clean_event_ids(settings, registry, 1) == views


async def test_nothing_is_stored_or_sent_before_consent(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.pages["shop"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "shop-web-2.3", "consent": "required", "flush-ms": "100",
         "impression-ms": "100"},
    )  # fmt: skip
    page = await _new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
    await page.goto(f"{site.url}/pages/shop")
    await page.wait_for_function("window.streamlearn && streamlearn.stats().queued >= 2")
    await page.wait_for_timeout(1000)
    assert requests == []
    assert await page.evaluate("Object.keys(localStorage).length") == 0
    assert await page.context.cookies() == []

    await page.evaluate("streamlearn('consent', true)")
    await page.wait_for_function(
        "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 2"
    )
    events = await _events(settings, registry, lambda r: len(r) >= 1)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert [e["user_id"] for e in events] == [cookies["sl_uid"]], (
        "the page's id became the cookie's"
    )


async def test_a_consent_setting_the_tag_cannot_read_asks_for_consent_and_says_so(
    browser: Browser, site: Site, collector: Collector
) -> None:
    """Found by a new user: `data-consent="Required"` (or "true") turned the gate off: the
    page view was sent and the cookies written at once. Bad options are said on the console
    and replaced by safe values; `data-arms="null"` stopped the tag."""
    site.pages["typo"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "Required", "arms": "null", "batch-size": "0",
         "flush-ms": "100", "impression-ms": "100"},
    )  # fmt: skip
    page = await _new_page(browser)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{site.url}/pages/typo")
    await page.wait_for_function("window.streamlearn && streamlearn.stats().queued >= 1")
    await page.wait_for_timeout(800)
    assert requests == []
    assert await page.context.cookies() == []
    assert await page.evaluate("Object.keys(localStorage).length") == 0
    assert any(e.startswith('streamlearn: consent must be "required"') for e in errors), errors
    assert any("arms must be a JSON object" in e for e in errors), errors
    assert any("batchSize must be a whole number" in e for e in errors), errors

    await page.evaluate("streamlearn('consent', true)")
    await page.wait_for_function(
        "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 1"
    )


async def test_consent_refused_and_global_privacy_control_send_nothing(
    browser: Browser, site: Site, collector: Collector
) -> None:
    site.pages["refused"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "required", "flush-ms": "100", "impression-ms": "100"},
        "<script>streamlearn('consent', false);</script>",
    )
    site.pages["gpc"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "honor-do-not-track": "true", "flush-ms": "100"},
    )
    gpc_on = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    requests: list[str] = []
    for name, init in (("refused", None), ("gpc", gpc_on)):
        page = await _new_page(browser, init)
        page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
        await page.goto(f"{site.url}/pages/{name}")
        await page.wait_for_function("window.streamlearn && streamlearn.stats")
        await page.evaluate("streamlearn('track', 'search', {q: 'x'})")
        await page.wait_for_timeout(800)
        assert await page.evaluate("streamlearn.stats().queued") == 0
        assert await page.context.cookies() == []
    assert requests == []


async def test_a_page_closed_before_the_flush_hands_its_events_to_a_beacon(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.pages["shop"] = _page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "shop-web-2.3", "flush-ms": "600000", "batch-size": "100"},
    )
    site.pages["away"] = "<!doctype html><title>elsewhere</title>"
    page = await _new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await page.wait_for_function("window.streamlearn && streamlearn.stats().queued >= 1")
    await page.evaluate("streamlearn('track', 'checkout', {})")
    # Ten minutes to the next flush: nothing was sent while the page was open.
    assert await page.evaluate("streamlearn.stats().sent") == 0
    await page.goto(f"{site.url}/pages/away")
    events = await _events(settings, registry, lambda r: len(r) >= 2)
    assert sorted(e["event_type"] for e in events) == ["checkout", "page_view"]
    assert await page.evaluate("Object.keys(localStorage).length") == 0, "none left queued"


async def test_the_write_key_goes_with_every_post_and_the_beacon(
    browser: Browser, site: Site, settings: Settings, registry: RegistryClient
) -> None:
    """A collector that wants write keys: the tag sends its data-write-key as the write_key
    query parameter on posts and on the beacon (which cannot carry a header), and the key's
    app is stamped on what arrives."""
    key = {SecretStr("wk-shop-web-5e1f"): "shop-web"}
    keyed = Collector(settings.model_copy(update={"collector_write_keys": key}), registry)
    await keyed.start()
    try:
        site.pages["shop"] = _page(
            "Shop",
            f"{keyed.url}/streamlearn.js",
            {"app-version": "shop-web-2.3", "write-key": "wk-shop-web-5e1f", "flush-ms": "600000"},
        )
        site.pages["away"] = "<!doctype html><title>elsewhere</title>"
        page = await _new_page(browser)
        await page.goto(f"{site.url}/pages/shop")
        await page.wait_for_function("window.streamlearn && streamlearn.stats().queued >= 1")
        await page.evaluate("streamlearn('flush')")  # the page view, by fetch
        await page.wait_for_function("streamlearn.stats().sent >= 1")
        await page.evaluate("streamlearn('track', 'checkout', {})")
        await page.goto(f"{site.url}/pages/away")  # the checkout, by beacon
        events = await _events(settings, registry, lambda r: len(r) >= 2)
    finally:
        await keyed.stop()
    assert {e["event_type"]: e["context"]["app"] for e in events} == {
        "page_view": "shop-web",
        "checkout": "shop-web",
    }
