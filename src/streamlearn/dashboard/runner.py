"""Running the dashboard as a process: ``streamlearn dashboard`` and ``streamlearn up``.

:func:`serve_dashboard` serves an app until a stop event is set and says where it listens
(port 0 picks a free port; the address is the one bound). :func:`run_dashboard` is the
process's main: its own event loop, SIGTERM and SIGINT set the stop event, and the app's
cleanup then stops the readers and ends the open event streams before the process exits.
With ``ready_file``, the URL is written there (atomically) once the dashboard listens, and
removed when it stops.
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from streamlearn.dashboard.app import create_dashboard_app
from streamlearn.dashboard.scrape import ScrapeTarget
from streamlearn.http_tls import server_ssl_context
from streamlearn.serde import SchemaSource
from streamlearn.settings import Settings

SHUTDOWN_TIMEOUT_S = 5.0


async def serve_dashboard(
    app: web.Application,
    *,
    host: str,
    port: int,
    stop: asyncio.Event,
    ready: Callable[[str], None] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set; ``ready(url)`` once listening
    (an https URL with ``ssl_context``)."""
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        bound = runner.addresses[0]
        address = f"[{bound[0]}]" if ":" in str(bound[0]) else str(bound[0])
        if ready is not None:
            scheme = "https" if ssl_context is not None else "http"
            ready(f"{scheme}://{address}:{bound[1]}")
        await stop.wait()
    finally:
        await runner.cleanup()


def write_ready_file(path: Path, url: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(url + "\n", encoding="utf-8")
    temporary.replace(path)


def remove_ready_file(path: Path, url: str) -> None:
    """Remove ``path`` if it still holds ``url``. A stopped dashboard's file read like a
    live one's: a script waiting for it at the next start took the old, closed address.
    A file another dashboard wrote since is left alone."""
    try:
        if path.read_text(encoding="utf-8").strip() == url:
            path.unlink()
    except FileNotFoundError:
        pass


def run_dashboard(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    scrape: Sequence[ScrapeTarget | str] = (),
    ready_file: Path | None = None,
    on_ready: Callable[[str], None] | None = None,
    registry: SchemaSource | None = None,
) -> None:
    """Run the dashboard until SIGTERM or SIGINT (blocks; call from the main thread); over
    TLS when the settings say so."""
    ssl_context = server_ssl_context(settings)  # first: a bad key file stops the start
    app = create_dashboard_app(settings, registry, scrape=scrape)

    written: list[str] = []

    def ready(url: str) -> None:
        if ready_file is not None:
            write_ready_file(ready_file, url)
            written.append(url)
        if on_ready is not None:
            on_ready(url)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_dashboard(
            app, host=host, port=port, stop=stop, ready=ready, ssl_context=ssl_context
        )

    try:
        asyncio.run(main())
    finally:
        if ready_file is not None and written:
            remove_ready_file(ready_file, written[-1])
