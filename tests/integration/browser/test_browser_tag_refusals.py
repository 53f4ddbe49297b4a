"""streamlearn.js when the collector refuses: an event too big for the collector or for the
closing beacon, and an endpoint the collector does not serve. In Chromium against a real
collector and broker. Each was found by a new user: an event must arrive or be refused where
the site's developer hears why, and one refused event must not cost the others."""

from __future__ import annotations

from playwright.async_api import Browser, Request

from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.integration.browser.support import (
    Collector,
    Site,
    new_page,
    read_events,
    shop_page,
    wait_for_tag,
)

QUIET = {"app-version": "shop-web-2.3", "impression-ms": "3600000", "page-view": "false"}
# Properties of `count` strings of 8,000 characters each: every field within the
# collector's limit, the event as a whole as big as the count makes it.
BIG_PROPERTIES = (
    "(count) => Object.fromEntries("
    "Array.from(Array(count), (_, i) => ['part' + i, 'x'.repeat(8000)]))"
)


def _types(records: list[dict[str, object]]) -> list[object]:
    return sorted(str(r["event_type"]) for r in records)


async def test_an_event_over_the_beacon_limit_does_not_hold_back_the_events_after_it(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A page closed with an 80 KB event queued first: the beacon took items up to the
    first that did not fit, i.e. none, and the two small events behind it were not sent
    (left in storage for a next page of the site that a last page never has)."""
    attributes = {**QUIET, "flush-ms": "600000"}
    site.pages["shop"] = shop_page("Shop", f"{collector.url}/streamlearn.js", attributes)
    page = await new_page(browser)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate(
        f"streamlearn('track', 'review', ({BIG_PROPERTIES})(10));"
        "streamlearn('track', 'add_to_cart', {sku: 'X-1'});"
        "streamlearn('track', 'checkout', {})"
    )
    assert (await page.evaluate("streamlearn.stats()"))["queued"] == 3
    await page.close(run_before_unload=True)  # pagehide: the beacon
    events = await read_events(settings, registry, lambda r: len(r) >= 2)
    assert _types(events) == ["add_to_cart", "checkout"]


async def test_an_event_the_collector_refuses_is_said_with_its_reason_and_the_rest_arrive(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """A 1.6 MB event (200 properties of 8,000 characters, each within the limit) between
    two small ones: the collector answered 413 until the tag sent it alone, and the tag
    dropped it without a word of its own (the console said only "Failed to load resource:
    413"). Then it sent every later event in a request of its own, for the page's life."""
    site.pages["shop"] = shop_page(
        "Shop", f"{collector.url}/streamlearn.js", {**QUIET, "flush-ms": "300"}
    )
    page = await new_page(browser)
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
    posts: list[str] = []

    def post(request: Request) -> None:
        if request.method == "POST":
            posts.append(request.post_data or "")

    page.on("request", post)
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate(
        "streamlearn('track', 'add_to_cart', {sku: 'X-1'});"
        f"streamlearn('track', 'review', ({BIG_PROPERTIES})(200));"
        "streamlearn('track', 'checkout', {})"
    )
    await wait_for_tag(page, "streamlearn.stats().queued === 0")
    assert (await page.evaluate("streamlearn.stats()"))["refused"] == 1
    refusals = [m for m in said if m.startswith("streamlearn: ")]
    assert len(refusals) == 1, said
    assert "review" in refusals[0], refusals
    assert "request body over 1048576 bytes" in refusals[0], refusals

    # The refused event was the one too big: later events share a request again.
    posted = len(posts)
    await page.evaluate(
        "for (const step of ['shipping', 'payment', 'confirm']) streamlearn('track', step, {})"
    )
    await wait_for_tag(page, "streamlearn.stats().queued === 0")
    assert len(posts) == posted + 1, posts[posted:]
    events = await read_events(settings, registry, lambda r: len(r) >= 5)
    assert _types(events) == ["add_to_cart", "checkout", "confirm", "payment", "shipping"]


async def test_an_endpoint_the_collector_does_not_serve_is_said_not_blamed_on_cors(
    browser: Browser, site: Site, collector: Collector
) -> None:
    """data-endpoint without its /v1 (a typo a new user makes): the collector's 404 had no
    CORS header, so the browser hid it and said "blocked by CORS policy", and the developer
    went to check STREAMLEARN_COLLECTOR_CORS_ORIGINS, which was right. The tag said
    nothing and retried for good."""
    attributes = {**QUIET, "endpoint": f"{collector.url}/events", "flush-ms": "100"}
    site.pages["shop"] = shop_page("Shop", f"{collector.url}/streamlearn.js", attributes)
    page = await new_page(browser)
    said: list[str] = []
    page.on("console", lambda message: said.append(message.text))
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    await page.evaluate("streamlearn('track', 'add_to_cart', {sku: 'X-1'})")
    answered = "streamlearn: collector answered 404"
    for _ in range(100):
        if any(answered in m for m in said):
            break
        await page.wait_for_timeout(100)
    assert any(answered in m for m in said), said
    assert not any("CORS policy" in m for m in said), said
    assert (await page.evaluate("streamlearn.stats()"))["queued"] == 1  # kept, as for 401
