"""What the dashboard's handlers share: one :class:`Dashboard` per application."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.scrape import ScrapeTarget
from streamlearn.dashboard.state import DashboardState
from streamlearn.settings import Settings


@dataclass
class Dashboard:
    settings: Settings
    state: DashboardState
    metrics: DashboardMetrics
    index_html: bytes
    scrape: tuple[ScrapeTarget, ...] = ()
    tick_s: float = 1.0
    heartbeat_s: float = 1.0
    """Longest silence on ``/api/events``: with nothing new, a heartbeat event goes out."""
    scrape_timeout_s: float = 2.0
    max_event_clients: int = 100
    """Most ``/api/events`` streams open at once; beyond it: 503."""
    event_write_timeout_s: float = 30.0
    """A stream whose client takes nothing for this long is closed."""
    event_clients: int = 0
    """``/api/events`` streams open now."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the application shuts down: event streams end so shutdown need not wait."""


DASHBOARD: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
