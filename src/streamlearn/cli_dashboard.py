"""``streamlearn dashboard``: the live web page of the running system (registered by
:mod:`streamlearn.cli`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streamlearn.cli_common import BootstrapOption, command_settings, fail, port_option


def dashboard(
    port: Annotated[int, port_option("HTTP port (0: any free port)", any_port=True)] = 8080,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    scrape: Annotated[
        list[str] | None,
        typer.Option(
            "--scrape",
            help="A part's Prometheus endpoint as [NAME=]URL, e.g. "
            "preprocess=http://127.0.0.1:9101/metrics; repeat for each part",
        ),
    ] = None,
    ready_file: Annotated[
        Path | None,
        typer.Option(help="Write the dashboard's URL here once it listens (removed at stop)"),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
    schema_registry_url: Annotated[
        str | None,
        typer.Option("--schema-registry-url", help="[default: $STREAMLEARN_SCHEMA_REGISTRY_URL]"),
    ] = None,
) -> None:
    """Serve a live dashboard: pipeline rates, models, drift, alerts, arms and processes.

    Follows model.state (metadata only), model.metrics, monitoring.drift and
    monitoring.alerts from the beginning, samples the pipeline topics' end offsets every
    second, and pushes it all to the page over server-sent events. Ctrl-C or SIGTERM stops.
    """
    from streamlearn.dashboard import run_dashboard
    from streamlearn.dashboard.app import scrape_targets
    from streamlearn.dashboard.exceptions import DashboardError

    settings = command_settings(
        long_running=True,
        kafka_bootstrap=bootstrap_servers,
        schema_registry_url=schema_registry_url,
    )
    try:
        targets = scrape_targets(scrape or [])
    except DashboardError as exc:
        fail(str(exc))
    if ready_file is not None:
        # Written once the server listens: checked now, before anything starts.
        if ready_file.is_dir():
            fail(f"--ready-file {ready_file}: a directory; name a file in it")
        if not ready_file.parent.is_dir():
            fail(f"--ready-file {ready_file}: {ready_file.parent} is not a directory")

    def ready(url: str) -> None:
        typer.echo(f"dashboard on {url}/ (namespace: {settings.topic_prefix or '(none)'})")

    run_dashboard(
        settings, host=host, port=port, scrape=targets, ready_file=ready_file, on_ready=ready
    )
