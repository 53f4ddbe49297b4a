"""``streamlearn up``: the whole system on this machine (registered by :mod:`streamlearn.cli`)."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

from streamlearn.cli_common import (
    BootstrapOption,
    DataDirOption,
    check_duration,
    command_settings,
    fail,
    fetch_progress,
    port_option,
)

CHAOS_INTERVAL_S = 15.0
"""``--chaos-interval``'s default: seconds between one fault's end and the next."""
CHAOS_OUTAGE_S = 30.0
"""``--chaos-outage``'s default: seconds the broker stays down in a broker fault."""


WIDE_COLUMNS = 200
"""Columns of ``up``'s output to a file or a CI log: rich's default there, 80, cut the
summary's tables (``versi…``, ``ctr_tr…``)."""


def up_console(to_stderr: bool) -> Console:
    """The console ``up`` reports on: a terminal's width, or ``WIDE_COLUMNS`` when the output
    goes elsewhere (``COLUMNS`` still decides when set)."""
    from rich.console import Console

    stream = sys.stderr if to_stderr else sys.stdout
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(
        stderr=to_stderr, highlight=False, soft_wrap=True, width=WIDE_COLUMNS if wide else None
    )


def up(
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Run the traffic simulator and show it live")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds and print a summary [default: Ctrl-C]"),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the final summary as JSON on stdout")
    ] = False,
    live: Annotated[
        bool | None, typer.Option("--live/--no-live", help="Live view [default: on a terminal]")
    ] = None,
    rate: Annotated[
        float | None, typer.Option(help="Simulated page views per second [default: 100]")
    ] = None,
    users: Annotated[int | None, typer.Option(help="Simulated people [default: 5000]")] = None,
    bot_share: Annotated[
        float | None, typer.Option(help="Share of page views made by bots [default: 0.05]")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of the simulated world [default: 0]")
    ] = None,
    drift_at: Annotated[
        float | None,
        typer.Option(
            help="Simulated second at which the world drifts (prices and what people like)"
        ),
    ] = None,
    change: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject a change KIND@SECOND (feature_drift, concept_drift, field_dropped, "
            "bot_wave); repeatable"
        ),
    ] = None,
    chaos: Annotated[
        bool,
        typer.Option(
            "--chaos",
            help="With --simulate: SIGKILL parts, restart the broker and pause agents on a "
            "schedule seeded by --seed, then check the invariants (docs/reliability.md)",
        ),
    ] = False,
    chaos_interval: Annotated[
        float | None,
        typer.Option(help="Seconds between one fault's end and the next [default: 15]"),
    ] = None,
    chaos_fault: Annotated[
        list[str] | None,
        typer.Option(
            help="Inject these faults in this order (kill:PART, pause:AGENT, broker) instead "
            "of one of each in a seeded order; repeatable"
        ),
    ] = None,
    chaos_outage: Annotated[
        float | None,
        typer.Option(help="Seconds the broker stays down in a broker fault [default: 30]"),
    ] = None,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="Run the embedded broker in its secure mode (SASL_SSL, SCRAM) with ACLs: "
            "each part connects as its own Kafka user, allowed only what `streamlearn acls "
            "plan` lists (docs/security.md)",
        ),
    ] = False,
    dashboard_port: Annotated[int, port_option("Port of the web dashboard")] = 8080,
    bootstrap_servers: BootstrapOption = None,
    port: Annotated[int, port_option("Port of the embedded broker")] = 9092,
    data_dir: DataDirOption = None,
    registry_port: Annotated[int, port_option("Port of the schema registry")] = 8081,
    collector_port: Annotated[int, port_option("Port of the collector")] = 8001,
    serve_port: Annotated[
        int | None,
        port_option("Port of the prediction worker [default: STREAMLEARN_SERVE_PORT, 8000]"),
    ] = None,
    schema_registry_url: Annotated[
        str | None,
        typer.Option("--schema-registry-url", help="Use this registry instead of starting one"),
    ] = None,
) -> None:
    """Run the system on this machine (Ctrl-C or SIGTERM stops what it started).

    Starts the embedded broker unless --bootstrap-servers is given, applies the topology,
    starts the schema registry unless --schema-registry-url is given, registers the schemas,
    then runs each agent, the collector and a prediction worker as supervised processes
    (a crash is reported and restarted). With --simulate, simulated people use the system
    and a live view shows what every stage does; the model learns their clicks.
    """
    import asyncio

    from streamlearn.models.configured import configured_specs
    from streamlearn.simulate import TrafficConfig
    from streamlearn.up import UpOptions, run_up
    from streamlearn.up.chaos import ChaosOptions
    from streamlearn.up.chaos_run import CHAOS_DEFAULTS
    from streamlearn.up.data_dir_lock import one_up_per_data_dir
    from streamlearn.up.simulation import apply_simulate_defaults, simulated_changes

    console = up_console(as_json)

    def say(message: str) -> None:
        console.print(message, markup=False)

    if simulate:
        for name, value in apply_simulate_defaults(os.environ).items():
            say(f"simulation default: {name}={value}")
    if secure and bootstrap_servers is not None:
        fail("--secure runs the embedded broker in its secure mode; with --bootstrap-servers, "
             "give your cluster's SASL settings (STREAMLEARN_CONFIG_FILE) instead")  # fmt: skip
    check_duration(duration)
    if chaos and not simulate:
        fail("--chaos needs --simulate: the invariants are checked against its ground truth")
    # Options that would be ignored: said, not run without (found as silently ignored).
    given = {
        "--drift-at": drift_at is not None,
        "--change": bool(change),
        "--rate": rate is not None,
        "--users": users is not None,
        "--bot-share": bot_share is not None,
        "--seed": seed is not None,
    }
    for option in (name for name, set_ in given.items() if set_ and not simulate):
        fail(f"{option} needs --simulate: it shapes the simulated world")
    chaos_given = {
        "--chaos-interval": chaos_interval is not None,
        "--chaos-fault": bool(chaos_fault),
        "--chaos-outage": chaos_outage is not None,
    }
    for option in (name for name, set_ in chaos_given.items() if set_ and not chaos):
        fail(f"{option} needs --chaos")
    if chaos:
        for name, value in CHAOS_DEFAULTS.items():
            if name not in os.environ:
                os.environ[name] = value
                say(f"chaos default: {name}={value}")
    settings = command_settings(
        long_running=True,
        kafka_bootstrap=bootstrap_servers,
        schema_registry_url=schema_registry_url,
    )
    # Before Kafka and the parts start: an unknown model was said by label-join, the
    # learner, the monitor and serve exiting 1 once all was up, then minutes of stopping.
    configured_specs(settings)
    try:
        changes = simulated_changes(drift_at, change or [], duration)
        traffic = TrafficConfig(
            rate=100.0 if rate is None else rate,
            users=5000 if users is None else users,
            bot_share=0.05 if bot_share is None else bot_share,
            seed=seed or 0,
            changes=changes,
        )
        chaos_options = (
            ChaosOptions(
                seed or 0,
                CHAOS_INTERVAL_S if chaos_interval is None else chaos_interval,
                tuple(chaos_fault or ()),
                CHAOS_OUTAGE_S if chaos_outage is None else chaos_outage,
            )
            if chaos
            else None
        )
    except ValueError as exc:
        fail(str(exc))
    options = UpOptions(
        embedded_kafka=bootstrap_servers is None,
        kafka_port=port,
        data_dir=data_dir,
        start_registry=schema_registry_url is None,
        registry_port=registry_port,
        collector_port=collector_port,
        serve_port=settings.serve_port if serve_port is None else serve_port,
        dashboard_port=dashboard_port,
        simulate=traffic if simulate else None,
        duration_s=duration,
        live=console.is_terminal if live is None else live,
        chaos=chaos_options,
        secure=secure,
    )
    with one_up_per_data_dir(settings.data_dir):
        outcome = asyncio.run(
            run_up(settings, options, say, on_fetch=fetch_progress, console=console)
        )
    if outcome is None:
        return
    final, results = outcome
    failed = [check for check in results if not check.passed]
    if as_json:
        report = {
            "ok": not failed,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in results],
            **final,
        }
        typer.echo(json.dumps(report, sort_keys=True))
    else:
        from streamlearn.up.view import render, render_checks

        console.print(render(final, duration, []))
        console.print(render_checks([(c.name, c.passed, c.detail) for c in results]))
    if failed:
        fail(f"{len(failed)} of {len(results)} checks failed: {failed[0].name}")
