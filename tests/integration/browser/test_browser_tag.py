"""streamlearn.js in a real browser (Debian's Chromium, driven by Playwright) against a real
collector on the embedded broker: what the tag sends, when, and that nothing is lost.

The test pages are served from another origin than the collector's (another port), so every
request the tag makes is a cross-origin one, as on a customer's site.
"""

from __future__ import annotations

import gzip

import aiohttp
from playwright.async_api import Browser
from pydantic import SecretStr

from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.integration.browser.support import (
    DESKTOP_CHROME,
    TAG,
    Collector,
    Site,
    clean_event_ids,
    new_page,
    read_events,
    read_feedback,
    shop_page,
    wait_for_tag,
)


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
    site.pages["shop"] = shop_page(
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
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop?from=test", referer="https://search.example/")
    await wait_for_tag(page, "window.streamlearn && window.streamlearn.stats")
    await page.wait_for_timeout(800)  # the first slot has been visible for the dwell time
    # Scrolled past before the dwell time: not an impression. Both scrolls happen in the
    # page, 100 ms apart on its own clock: one scroll per call from here, a loaded machine's
    # round trip to the browser once took longer than the dwell time, and the slot was
    # (rightly) an impression.
    await page.evaluate(
        "() => new Promise((done) => {"
        " document.getElementById('never').scrollIntoView();"
        " setTimeout(() => { document.getElementById('below').scrollIntoView(); done(); }, 100);"
        " })"
    )
    await page.wait_for_timeout(800)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.click("#top")
    # The user signs in and buys: the site's own id from now on, a conversion with a value.
    await page.evaluate(
        "streamlearn('set', {userId: 'customer-42'});"
        "streamlearn('feedback', 'req-top', 'conversion', 12.5)"
    )
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 6")

    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 4)
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
        site.pages[name] = shop_page(name, f"{site.url}/tag.js", attributes)
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/one")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate("streamlearn('track', 'search', {q: 'shoes'})")
    await wait_for_tag(page, "streamlearn.stats().queued >= 3")  # view, search, impression
    # A new page load: the first page's queue survives in localStorage and is adopted.
    await page.goto(f"{site.url}/pages/two")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 4")
    stored = await page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('streamlearn.outbox.')).length"
    )
    assert stored >= 1
    assert (await page.evaluate("streamlearn.stats().sent")) == 0

    await collector.start()
    await wait_for_tag(page, "streamlearn.stats().queued === 0", timeout_ms=90000)
    events = await read_events(settings, registry, lambda r: len(r) >= 3)
    assert sorted(e["event_type"] for e in events) == ["page_view", "page_view", "search"]
    # Each page load showed the first slot long enough: two impressions, two event ids.
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 2)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("impression", "req-top")] * 2
    assert len({r["event_id"] for r in events + feedback}) == 5
    # Whatever was sent twice on the way (a fetch cut off by the page load, a beacon), the
    # preprocess agent keeps each event once.
    clean = await clean_event_ids(settings, registry, 3)
    assert sorted(clean) == sorted(str(e["event_id"]) for e in events)


async def test_a_lost_answer_is_retried_after_retry_after_and_preprocess_keeps_one_copy(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.lose_answers = 1
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {
            "app-version": "shop-web-2.3",
            "endpoint": f"{site.url}/gate/v1/events",
            "flush-ms": "100",
        },
    )
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(
        page,
        "window.streamlearn && streamlearn.stats().sent >= 1 && streamlearn.stats().queued === 0",
        timeout_ms=30000,
    )
    (first_at, first_ids), (second_at, second_ids) = site.seen[:2]
    # The retry carries the same events with the same ids (and what was queued since).
    assert second_ids[: len(first_ids)] == first_ids
    assert second_at - first_at >= 1.0, "not before the Retry-After the collector asked for"
    views = first_ids[:1]  # the page view; its copy was written before the "lost" answer
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert [str(e["event_id"]) for e in events] == views * 2, "both copies reached Kafka"

    assert await clean_event_ids(settings, registry, 1) == views


async def test_nothing_is_stored_or_sent_before_consent(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "shop-web-2.3", "consent": "required", "flush-ms": "100",
         "impression-ms": "100"},
    )  # fmt: skip
    page = await new_page(browser)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 2")
    await page.wait_for_timeout(1000)
    assert requests == []
    assert await page.evaluate("Object.keys(localStorage).length") == 0
    assert await page.context.cookies() == []

    await page.evaluate("streamlearn('consent', true)")
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 2")
    events = await read_events(settings, registry, lambda r: len(r) >= 1)
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
    site.pages["typo"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "Required", "arms": "null", "batch-size": "0",
         "flush-ms": "100", "impression-ms": "100"},
    )  # fmt: skip
    page = await new_page(browser)
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{site.url}/pages/typo")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
    await page.wait_for_timeout(800)
    assert requests == []
    assert await page.context.cookies() == []
    assert await page.evaluate("Object.keys(localStorage).length") == 0
    assert any(e.startswith('streamlearn: consent must be "required"') for e in errors), errors
    assert any("arms must be a JSON object" in e for e in errors), errors
    assert any("batchSize must be a whole number" in e for e in errors), errors

    await page.evaluate("streamlearn('consent', true)")
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 1")


async def test_consent_refused_and_global_privacy_control_send_nothing(
    browser: Browser, site: Site, collector: Collector
) -> None:
    site.pages["refused"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "required", "flush-ms": "100", "impression-ms": "100"},
        "<script>streamlearn('consent', false);</script>",
    )
    site.pages["gpc"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "honor-do-not-track": "true", "flush-ms": "100"},
    )
    gpc_on = "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})"
    requests: list[str] = []
    for name, init in (("refused", None), ("gpc", gpc_on)):
        page = await new_page(browser, init)
        page.on("request", lambda r: requests.append(r.url) if "/v1/events" in r.url else None)
        await page.goto(f"{site.url}/pages/{name}")
        await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
        await page.evaluate("streamlearn('track', 'search', {q: 'x'})")
        await page.wait_for_timeout(800)
        assert await page.evaluate("streamlearn.stats().queued") == 0
        assert await page.context.cookies() == []
    assert requests == []


async def test_a_page_closed_before_the_flush_hands_its_events_to_a_beacon(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "shop-web-2.3", "flush-ms": "600000", "batch-size": "100"},
    )
    site.pages["away"] = "<!doctype html><title>elsewhere</title>"
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
    await page.evaluate("streamlearn('track', 'checkout', {})")
    # Ten minutes to the next flush: nothing was sent while the page was open.
    assert await page.evaluate("streamlearn.stats().sent") == 0
    await page.goto(f"{site.url}/pages/away")
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
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
        site.pages["shop"] = shop_page(
            "Shop",
            f"{keyed.url}/streamlearn.js",
            {"app-version": "shop-web-2.3", "write-key": "wk-shop-web-5e1f", "flush-ms": "600000"},
        )
        site.pages["away"] = "<!doctype html><title>elsewhere</title>"
        page = await new_page(browser)
        await page.goto(f"{site.url}/pages/shop")
        await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
        await page.evaluate("streamlearn('flush')")  # the page view, by fetch
        await wait_for_tag(page, "streamlearn.stats().sent >= 1")
        await page.evaluate("streamlearn('track', 'checkout', {})")
        await page.goto(f"{site.url}/pages/away")  # the checkout, by beacon
        events = await read_events(settings, registry, lambda r: len(r) >= 2)
    finally:
        await keyed.stop()
    assert {e["event_type"]: e["context"]["app"] for e in events} == {
        "page_view": "shop-web",
        "checkout": "shop-web",
    }


async def test_what_a_site_gets_wrong_is_said_and_never_breaks_it(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """Found by a new user, each on a real page: `consent('false')` granted consent; an
    unknown command queued before the tag loaded lost every command after it (and threw
    into the page); an `init` after load was half applied; a bad `data-endpoint` stopped
    the tag and made every later call throw; a cookie `sl_sid=abc%zz` stopped page views;
    a `value` feedback of '3.5' was sent as null. Each is now said on the console."""
    queued = (
        "<script>streamlearn('track', 'q_first', {}); streamlearn('identify', 'u');"
        " streamlearn('track', 'q_after', {});</script>"
    )
    site.pages["wrong"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "required", "endpoint": "http://[collector/v1/events",
         "flush-ms": "100", "impression-ms": "100000"},
        queued,
    )  # fmt: skip
    page = await new_page(browser, "document.cookie = 'sl_sid=abc%zz; path=/'")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    await page.goto(f"{site.url}/pages/wrong")
    await wait_for_tag(
        page, "window.streamlearn && streamlearn.stats && streamlearn.stats().queued >= 3"
    )
    for call in ("streamlearn('consent', 'false')", "streamlearn('consent', 'no')",
                 "streamlearn('init', {consent: 'not-required', batchSize: 1})",
                 "streamlearn('feedback', 'req-top', 'value', '3.5')"):  # fmt: skip
        assert await page.evaluate(f"(() => {{ {call}; return true; }})()")
    await page.wait_for_timeout(500)
    cookies = {c["name"]: c["value"] for c in await page.context.cookies()}
    assert cookies == {"sl_sid": "abc%zz"}, "the tag wrote none: consent was not given"
    assert await page.evaluate("streamlearn.stats().sent") == 0
    said = "\n".join(errors)
    assert "page error" not in said, said
    assert 'endpoint must be an http(s) URL or path, not "http://[collector' in said
    assert 'unknown command "identify"' in said
    assert 'consent takes true or false, not "false"' in said
    assert "'init' after load ignored" in said
    assert "feedback value must be a finite number" in said
    # Consent given for real: the page view and both queued events (the one after the
    # unknown command too) reach the collector at the default endpoint.
    await page.evaluate("streamlearn('consent', true)")
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 3")
    events = await read_events(settings, registry, lambda r: len(r) >= 3)
    assert sorted(e["event_type"] for e in events) == ["page_view", "q_after", "q_first"]


async def test_consent_withdrawn_removes_what_the_tag_wrote(
    browser: Browser, site: Site, collector: Collector
) -> None:
    """Found by a new user: `consent(false)` after `consent(true)` left the `sl_uid` and
    `sl_sid` cookies, and the queues of the site's other pages in localStorage."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {"app-version": "w", "consent": "required", "flush-ms": "600000",
         "impression-ms": "100000"},
    )  # fmt: skip
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
    await page.evaluate("streamlearn('consent', true)")
    await page.evaluate(
        "localStorage.setItem('streamlearn.outbox.closed-page', '{\"at\":0,\"items\":[]}')"
    )
    await page.evaluate("localStorage.setItem('site.own', 'kept')")
    names = {c["name"] for c in await page.context.cookies()}
    assert {"sl_uid", "sl_sid"} <= names
    await page.evaluate("streamlearn('consent', false)")
    assert {c["name"] for c in await page.context.cookies()} & {"sl_uid", "sl_sid"} == set()
    assert await page.evaluate("Object.keys(localStorage)") == ["site.own"]
    assert await page.evaluate("streamlearn.stats().queued") == 0
