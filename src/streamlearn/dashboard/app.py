"""The dashboard's aiohttp application factory.

``create_dashboard_app(settings)`` builds the app; its lifecycle starts the readers the
page's figures come from and stops them on shutdown: the topic follower and the end-offset
sampler (threads: confluent-kafka blocks) and, with scrape targets, the scraper (a task).
``kafka=False`` builds it without the Kafka readers, for tests that feed
``app[DASHBOARD].state`` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from streamlearn.dashboard.auth import dashboard_door
from streamlearn.dashboard.context import DASHBOARD, Dashboard
from streamlearn.dashboard.decoding import Decoders
from streamlearn.dashboard.exceptions import DashboardError
from streamlearn.dashboard.follower import TopicFollower
from streamlearn.dashboard.history import DEFAULT_WINDOW_S
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.offsets import EndOffsetSampler
from streamlearn.dashboard.routes import add_routes
from streamlearn.dashboard.scrape import ScrapeTarget, scrape_all
from streamlearn.dashboard.security import add_security_headers
from streamlearn.dashboard.state import PIPELINE, DashboardState
from streamlearn.http_tls import client_ssl_context
from streamlearn.serde import RegistryClient, SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")


def scrape_targets(scrape: Sequence[ScrapeTarget | str]) -> tuple[ScrapeTarget, ...]:
    """``--scrape`` values as targets; names must differ."""
    targets = tuple(t if isinstance(t, ScrapeTarget) else ScrapeTarget.parse(t) for t in scrape)
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DashboardError(f"--scrape: two targets named {', '.join(duplicates)}; name them")
    return targets


def create_dashboard_app(
    settings: Settings,
    registry: SchemaSource | None = None,
    *,
    scrape: Sequence[ScrapeTarget | str] = (),
    kafka: bool = True,
    tick_s: float = 1.0,
    window_s: float = DEFAULT_WINDOW_S,
) -> web.Application:
    """The dashboard of the system ``settings`` describe (its topics in their namespace),
    scraping ``scrape`` (``[NAME=]URL`` each) for the processes section."""
    targets = scrape_targets(scrape)
    state = DashboardState(
        topic_prefix=settings.topic_prefix, scrape=targets, window_s=window_s, tick_s=tick_s
    )
    dashboard = Dashboard(
        settings=settings,
        state=state,
        metrics=DashboardMetrics(),
        index_html=(STATIC_DIR / "index.html").read_bytes(),
        scrape=targets,
        tick_s=tick_s,
        heartbeat_s=tick_s,
        max_event_clients=settings.dashboard_max_event_clients,
        event_write_timeout_s=settings.dashboard_event_write_timeout_s,
    )
    door = dashboard_door(settings)
    app = web.Application(middlewares=[door] if door is not None else [])
    app[DASHBOARD] = dashboard
    app.on_response_prepare.append(add_security_headers)
    app.on_shutdown.append(_end_streams)
    add_routes(app, str(STATIC_DIR))
    if kafka:
        app.cleanup_ctx.append(_kafka_lifecycle(registry))
    if targets:
        app.cleanup_ctx.append(_scrape_lifecycle)
    return app


async def _end_streams(app: web.Application) -> None:
    app[DASHBOARD].closing.set()


def _threadsafe(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None]
) -> Callable[..., None]:
    """``callback`` run on ``loop`` when called from another thread (dropped once the
    loop is closed: the dashboard is stopping)."""

    def call(*args: Any) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    return call


def _kafka_lifecycle(
    registry: SchemaSource | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        dashboard = app[DASHBOARD]
        settings, state = dashboard.settings, dashboard.state
        loop = asyncio.get_running_loop()
        source: SchemaSource = registry or RegistryClient.for_settings(settings)
        catalogue = TopicCatalogue.from_settings(settings)
        follower = TopicFollower(
            settings,
            Decoders(settings, source),
            deliver=_threadsafe(loop, state.apply),
            report=_threadsafe(loop, state.set_follow_status),
            metrics=dashboard.metrics,
        )
        sampler = EndOffsetSampler(
            settings,
            {catalogue.topic(topic).name: series for series, topic in PIPELINE},
            deliver=_threadsafe(loop, state.sample_offsets),
            report=_threadsafe(loop, state.set_offsets_error),
            metrics=dashboard.metrics,
            interval_s=dashboard.tick_s,
        )
        follower.start()
        sampler.start()
        try:
            yield
        finally:
            await asyncio.gather(asyncio.to_thread(follower.stop), asyncio.to_thread(sampler.stop))
            if registry is None and isinstance(source, RegistryClient):
                source.close()

    return lifecycle


async def _scrape_lifecycle(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_scrape_forever(app[DASHBOARD]), name="dashboard-scrape")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _scrape_forever(dashboard: Dashboard) -> None:
    loop = asyncio.get_running_loop()
    # Parts served over TLS by a private CA are scraped with STREAMLEARN_HTTP_TLS_CAFILE.
    connector = aiohttp.TCPConnector(ssl=client_ssl_context(dashboard.settings))
    async with aiohttp.ClientSession(connector=connector) as session:
        while True:
            started = loop.time()
            results = await scrape_all(session, dashboard.scrape, dashboard.scrape_timeout_s)
            for result in results:
                outcome = "ok" if result.samples is not None else "failed"
                dashboard.metrics.scrapes.labels(target=result.target.name, outcome=outcome).inc()
            dashboard.state.observe_scrape(time.time(), results)
            await asyncio.sleep(max(0.0, dashboard.tick_s - (loop.time() - started)))
