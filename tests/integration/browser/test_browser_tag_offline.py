"""streamlearn.js on a page that goes offline and back, in Chromium against a real
collector and broker, on the page's own (installed) clock: found by a new user, the tag
waited out its back-off after the browser was back online."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

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


async def test_a_page_back_online_sends_its_events_at_once_not_after_its_back_off(
    browser: Browser, site: Site, collector: Collector, settings: Settings, registry: RegistryClient
) -> None:
    """Offline for a few minutes (a train in a tunnel), the back-off grew to a minute; back
    online, the tag waited it out, and a shopper who left the page meanwhile sent no beacon
    (the collector was known to be failing): the events stayed in a storage no page of the
    site might read again."""
    site.pages["shop"] = shop_page(
        "Shop", f"{collector.url}/streamlearn.js", {**QUIET, "flush-ms": "100"}
    )
    page = await new_page(browser)
    failed: list[Request] = []
    page.on("requestfailed", lambda request: failed.append(request))
    await page.clock.install()
    await page.goto(f"{site.url}/pages/shop")
    await wait_for_tag(page, "window.streamlearn && streamlearn.stats")
    # The page's time moves only when the test moves it (run_for).
    await page.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
    await page.context.set_offline(True)
    await page.evaluate("streamlearn('track', 'add_to_cart', {sku: 'X-1'})")
    # Seven failed attempts on the page's clock: the back-off is at its one-minute ceiling
    # (30 to 60 s with its jitter). Each minute moved, then the attempt it fired failing.
    for attempt in range(1, 8):
        await page.clock.run_for(60000)
        for _ in range(100):
            if len(failed) >= attempt:
                break
            await asyncio.sleep(0.05)
    assert len(failed) >= 7, failed
    await page.context.set_offline(False)
    # Five seconds on the page's clock at most, in steps (the tag's timers fire as it
    # moves): far short of the back-off's 30 s or more.
    for _ in range(10):
        await page.clock.run_for(500)
        await asyncio.sleep(0.3)
        if await page.evaluate("streamlearn.stats().queued === 0"):
            break
    assert await page.evaluate("streamlearn.stats()") == {
        "queued": 0, "sent": 1, "refused": 0, "dropped": 0, "disabled": False,
        "version": await page.evaluate("streamlearn.stats().version"),
    }  # fmt: skip
    events = await read_events(settings, registry, lambda r: len(r) >= 1)
    assert [e["event_type"] for e in events] == ["add_to_cart"]
