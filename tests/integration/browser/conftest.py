"""Fixtures of the browser tag's tests: the site, the collector, Chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.integration.browser.support import Collector, Site, chromium
from tests.support import serve_app


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
    async with chromium() as launched:
        yield launched
