"""streamlearn.js at its limits, in Chromium against a real collector and broker: text the
browser measures in bytes, items the collector would refuse, addresses over its limit,
consent given to a returning visitor, a page closed while the collector fails, elements a
framework reuses, elements taller than the window, a page hidden during a dwell, a middle
click, and a full queue. Each was found by a new user; every event must arrive or be
refused where the caller hears why."""

from __future__ import annotations

import asyncio

import aiohttp
from playwright.async_api import Browser

from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.integration.browser.support import (
    QUEUE_STUB,
    Collector,
    Site,
    new_page,
    read_events,
    read_feedback,
    shop_page,
    wait_for_tag,
)

VERSION = {"app-version": "shop-web-2.3"}
# The shop page's hero is in view, so a second after load the tag queues its impression: one
# more item, which a test that counts the queue exactly must not race (CI did, and lost).
NO_IMPRESSION = {"impression-ms": "3600000"}


async def test_a_batch_of_non_ascii_text_is_sent_by_its_bytes_and_arrives(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """Ten events of 4,000 CJK characters (~40,000 characters, ~120 KB): the tag measured
    characters, sent them as a keepalive request, which Chromium refuses over 64 KiB, and
    retried the same batch forever: nothing after it was ever sent."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, **NO_IMPRESSION, "flush-ms": "600000"},
    )
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
    await page.evaluate(
        "for (let i = 0; i < 10; i++) streamlearn('track', 'review', {text: '漢'.repeat(4000)});"
        "streamlearn('flush')"
    )
    await wait_for_tag(
        page,
        "streamlearn.stats().queued === 0 && streamlearn.stats().sent === 11",
        timeout_ms=60000,
    )
    events = await read_events(settings, registry, lambda r: len(r) >= 11)
    reviews = [e for e in events if e["event_type"] == "review"]
    assert len(reviews) == 10
    assert all(e["properties"]["text"] == "漢" * 4000 for e in reviews)


async def test_an_item_the_collector_would_refuse_is_refused_at_the_call_not_in_the_beacon(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A feedback kind the collector does not take, queued between two events and sent in
    the page's closing beacon: the collector refused the whole beacon for it, and a beacon
    cannot read the answer, so all three events were lost."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, **NO_IMPRESSION, "flush-ms": "600000"},
    )
    site.pages["away"] = "<!doctype html><title>elsewhere</title>"
    page = await new_page(browser)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued >= 1")
    await page.evaluate(
        "streamlearn('track', 'add_to_cart', {sku: 'X-1'});"
        "streamlearn('feedback', 'req-1', 'purchase', 9.99);"
        "streamlearn('track', 'checkout', {})"
    )
    assert await page.evaluate("streamlearn.stats()") == {
        "queued": 3, "sent": 0, "refused": 1, "dropped": 0, "disabled": False,
        "version": await page.evaluate("streamlearn.stats().version"),
    }  # fmt: skip
    assert any("feedback kind must be one of impression, click" in e for e in errors), errors
    await page.goto(f"{site.url}/pages/away")  # the three by beacon
    events = await read_events(settings, registry, lambda r: len(r) >= 3)
    assert sorted(e["event_type"] for e in events) == ["add_to_cart", "checkout", "page_view"]


async def test_a_missing_request_id_or_event_type_is_refused_at_the_call_not_sent_as_text(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """`streamlearn('feedback', prediction.requestId, 'conversion', 12.5)` with a property
    the site's prediction does not have sent the request id "undefined": the collector took
    it and label-join could never join it, so the conversion was lost without a word. A
    `track` of an undefined type was a "undefined" event."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, **NO_IMPRESSION, "flush-ms": "100"},
    )
    page = await new_page(browser)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent === 1")
    await page.evaluate(
        "const prediction = {request_id: 'req-7'};"
        "streamlearn('feedback', prediction.requestId, 'conversion', 12.5);"
        "streamlearn('track', prediction.eventName, {});"
        "streamlearn('feedback', 42, 'click');"  # a number is the id's text, as before
        "streamlearn('track', 'checkout', {})"
    )
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 3")
    stats = await page.evaluate("streamlearn.stats()")
    assert (stats["sent"], stats["refused"]) == (3, 2)
    assert any("not sent: request_id is required" in e for e in errors), errors
    assert any("not sent: event_type is required" in e for e in errors), errors
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert sorted(e["event_type"] for e in events) == ["checkout", "page_view"]
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 1)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("click", "42")]


async def test_a_page_address_over_the_collectors_limit_is_cut_and_the_events_arrive(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A URL of more than 8,192 characters (here its fragment, which the server never sees):
    every event of the page was refused, `[0].url`, and none reached Kafka."""
    site.pages["shop"] = shop_page(
        "Shop", f"{collector.url}/streamlearn.js", {**VERSION, "flush-ms": "100"}
    )
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop#" + "f" * 9000)
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate("streamlearn('track', 'search', {q: 'shoes'})")
    await wait_for_tag(
        page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 2", timeout_ms=60000
    )
    assert await page.evaluate("streamlearn.stats().refused") == 0
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert sorted(e["event_type"] for e in events) == ["page_view", "search"]
    for event in events:
        assert len(event["url"]) == 8192
        assert event["url"].startswith(f"{site.url}/pages/shop#fff")
        assert event["context"]["truncated"] == "url"


async def test_consent_given_to_a_returning_visitor_stamps_the_held_events_with_the_cookies(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """The page view is made before the queued consent runs: it went out with a throwaway
    id and session of the page, not the returning visitor's cookies."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, "consent": "required", "flush-ms": "100"},
        "<script>streamlearn('consent', true);</script>",
    )
    page = await new_page(browser)
    await page.context.add_cookies(
        [
            {"name": "sl_uid", "value": "returning-42", "url": site.url},
            {"name": "sl_sid", "value": "session-7", "url": site.url},
        ]
    )
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent >= 1")
    await page.evaluate("streamlearn('track', 'search', {q: 'shoes'})")
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 2")
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert {(e["event_type"], e["user_id"], e["session_hint"]) for e in events} == {
        ("page_view", "returning-42", "session-7"),
        ("search", "returning-42", "session-7"),
    }


async def test_no_beacon_while_the_collector_is_failing_the_next_page_sends_the_events(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """The collector answered 503, the retry was in flight when the page closed: the tag
    checked only the back-off, sent a beacon (which got 503 too) and emptied its storage."""
    site.fail_posts = 1
    site.held = asyncio.Event()
    attributes = {**VERSION, "endpoint": f"{site.url}/gate/v1/events", "flush-ms": "100"}
    site.pages["shop"] = shop_page("Shop", f"{collector.url}/streamlearn.js", attributes)
    site.pages["away"] = "<!doctype html><title>elsewhere</title>"
    page = await new_page(browser)
    try:
        await page.goto(f"{site.url}/pages/shop")
        await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
        await page.evaluate("streamlearn('track', 'checkout', {})")
        for _ in range(100):  # the 503, then the retry (held) after Retry-After
            if len(site.seen) >= 2:
                break
            await asyncio.sleep(0.1)
        assert len(site.seen) == 2, site.seen
        await page.goto(f"{site.url}/pages/away")
        await asyncio.sleep(1.0)
        assert len(site.seen) == 2, "a beacon was sent to a failing collector"
        saved = await page.evaluate(
            "Object.keys(localStorage).filter(k => k.startsWith('streamlearn.outbox.')).length"
        )
        assert saved == 1, "the events stay in storage for the next page"
    finally:
        site.held.set()
    # The next page adopts them (the held retry may deliver them too: copies, not losses).
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().queued === 0")
    events = await read_events(settings, registry, lambda r: {"checkout"} <= _types(r))
    assert {"checkout", "page_view"} <= _types(events)


def _types(records: list[dict[str, object]]) -> set[object]:
    return {r["event_type"] for r in records}


async def test_an_element_given_a_new_prediction_in_place_gets_its_impression(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """Frameworks reuse elements: a new request id on an element already seen got no
    impression (the element was no longer watched), only its click."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, "flush-ms": "100", "impression-ms": "200"},
    )
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent >= 2")
    await page.evaluate(
        "document.getElementById('top').setAttribute('data-streamlearn-request-id', 'req-new')"
    )
    await page.wait_for_timeout(600)
    await page.click("#top")
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 3)
    assert sorted((f["kind"], f["request_id"]) for f in feedback) == [
        ("click", "req-new"),
        ("impression", "req-new"),
        ("impression", "req-top"),
    ]


async def test_an_element_taller_than_twice_the_viewport_gets_its_impression(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """Half of an element over twice the viewport's height can never be visible at once: a
    list of recommendations 1,500 px tall in a 700 px window filled it for seconds and got
    no impression. It counts once it covers half the viewport; a tall element only peeking
    in at the bottom edge still does not."""
    site.pages["tall"] = f"""<!doctype html><html><body style="margin:0">
<div style="height:200px">header</div>
<div id="list" data-streamlearn-request-id="req-list" style="height:1500px">the list</div>
<div style="height:3000px"></div>
<div id="peek" data-streamlearn-request-id="req-peek" style="height:1500px">more</div>
{QUEUE_STUB}<script async src="{collector.url}/streamlearn.js"
  data-app-version="shop-web-2.3" data-impression-ms="300" data-flush-ms="100"></script>
</body></html>"""
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/tall")
    # The page view and the first list's impression: it fills 500 px of the 700.
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent === 2", 10000)
    # The second list's top 200 px show at the bottom of the window: not half of it.
    await page.evaluate("window.scrollTo(0, document.getElementById('peek').offsetTop - 500)")
    await page.wait_for_timeout(1000)
    stats = await page.evaluate("streamlearn.stats()")
    assert (stats["queued"], stats["sent"]) == (0, 2), "the peeking list is no impression"
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 1)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("impression", "req-list")]


# Headless Chromium keeps every page visible; these make the page hidden as far as its
# scripts can tell, and say so, as the browser does for another tab or a locked screen.
PAGE_VISIBILITY = """
let hidden = false;
Object.defineProperty(document, "hidden", { get: () => hidden });
Object.defineProperty(document, "visibilityState", {
  get: () => (hidden ? "hidden" : "visible"),
});
window.setHidden = (value) => {
  hidden = value;
  document.dispatchEvent(new Event("visibilitychange"));
};
"""


async def test_a_dwell_does_not_go_on_while_the_page_is_hidden(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A shopper who saw a recommendation for a moment and went to another tab got its
    impression when the dwell ran out: hidden, the page is not redrawn, so the observer
    never said the element had gone. The dwell begins again when the page is shown."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, "flush-ms": "100", "impression-ms": "3000"},
    )
    page = await new_page(browser, PAGE_VISIBILITY)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent === 1")
    # Hidden within the dwell (the impression not yet made), for longer than the dwell.
    assert await page.evaluate("() => [streamlearn.stats().sent, setHidden(true)][0]") == 1
    await page.wait_for_timeout(4000)
    stats = await page.evaluate("streamlearn.stats()")
    assert (stats["queued"], stats["sent"]) == (0, 1), "no impression while hidden"
    await page.evaluate("setHidden(false)")
    await wait_for_tag(page, "streamlearn.stats().sent === 2", 10000)
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 1)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("impression", "req-top")]


async def test_a_recommendation_opened_in_a_new_tab_by_a_middle_click_is_a_click(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A middle click opens a link in a new tab and fires `auxclick`, not `click`: the
    shopper who opened a recommendation so was recorded as not clicking it, a negative
    label for what they chose. A right click (the context menu) is still no click."""
    site.pages["links"] = f"""<!doctype html><html><body>
<a id="rec" href="/pages/links" data-streamlearn-request-id="req-rec"
   style="display:block;height:100px">recommended product</a>
{QUEUE_STUB}<script async src="{collector.url}/streamlearn.js" data-app-version="shop-web-2.3"
  data-flush-ms="100" data-impression-ms="3600000"></script>
</body></html>"""
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/links")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent === 1")
    await page.click("#rec", button="right")
    await page.click("#rec", button="middle")
    await wait_for_tag(page, "streamlearn.stats().sent >= 2", 10000)
    await page.wait_for_timeout(500)
    assert await page.evaluate("streamlearn.stats().sent") == 2, "the right click is no click"
    feedback = await read_feedback(settings, registry, lambda r: len(r) >= 1)
    assert [(f["kind"], f["request_id"]) for f in feedback] == [("click", "req-rec")]


async def test_events_the_full_queue_gave_up_are_counted_on_every_later_event(
    browser: Browser, site: Site, collector: Collector
) -> None:
    """The count was reset by every event, so stats() said 1 after 16 were given up, and
    the one event that carried the count could itself be pushed out."""
    site.fail_posts = 1000  # the collector is down: everything stays queued
    attributes = {
        **VERSION,
        **NO_IMPRESSION,
        "endpoint": f"{site.url}/gate/v1/events",
        "max-queue": "5",
    }
    site.pages["shop"] = shop_page("Shop", f"{collector.url}/streamlearn.js", attributes)
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate("for (let i = 0; i < 20; i++) streamlearn('track', 'search', {})")
    assert await page.evaluate("streamlearn.stats().dropped") == 16  # 21 made, 5 kept
    stored = (
        "JSON.parse(localStorage.getItem(Object.keys(localStorage)"
        ".find(k => k.startsWith('streamlearn.outbox.')))).items.map(i => i.body.context.dropped)"
    )
    # Events made within a second share one write of the queue.
    await wait_for_tag(page, f"{stored}.includes('16')", timeout_ms=5000)
    queued = await page.evaluate(stored)
    assert queued == ["12", "13", "14", "15", "16"]


async def test_the_tag_has_an_etag_per_encoding_and_if_none_match_star_is_not_modified(
    collector: Collector,
) -> None:
    """The gzip and identity bodies shared one strong ETag, and `If-None-Match: *` got 200."""
    url = f"{collector.url}/streamlearn.js"
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(url, headers={"Accept-Encoding": "gzip"}) as answer:
            gzip_etag = answer.headers["ETag"]
        async with session.get(url, headers={"Accept-Encoding": "identity"}) as answer:
            identity_etag = answer.headers["ETag"]
        assert gzip_etag != identity_etag
        for given, encoding, status in (
            ("*", "gzip", 304),
            (gzip_etag, "identity", 200),
            (identity_etag, "identity", 304),
            (f'"other", W/{gzip_etag}', "gzip", 304),
        ):
            headers = {"If-None-Match": given, "Accept-Encoding": encoding}
            async with session.get(url, headers=headers) as answer:
                assert answer.status == status, (given, encoding)


async def test_a_cookie_domain_that_is_not_the_pages_is_said_and_the_pages_host_used(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """`data-cookie-domain=".shop.example"` on a page of another host (staging, a local
    copy): the browser silently drops a cookie for another domain, so every page load was
    a new user and every event a new session, and nothing said why."""
    site.pages["shop"] = shop_page(
        "Shop",
        f"{collector.url}/streamlearn.js",
        {**VERSION, **NO_IMPRESSION, "cookie-domain": ".shop.example", "flush-ms": "100"},
    )
    page = await new_page(browser)
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats().sent >= 1")
    await page.evaluate("streamlearn('track', 'search', {q: 'shoes'})")
    await wait_for_tag(page, "streamlearn.stats().queued === 0 && streamlearn.stats().sent >= 2")
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert len({(e["user_id"], e["session_hint"]) for e in events}) == 1, "one visitor, one visit"
    assert {c["name"] for c in await page.context.cookies()} == {"sl_uid", "sl_sid"}
    assert any("cookieDomain" in text and "127.0.0.1" in text for text in said), said
