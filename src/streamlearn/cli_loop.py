"""The feedback loop's commands: ``serve``, ``experiments set|list``, ``simulate``.

Registered on the main command line by :mod:`streamlearn.cli`.
"""

from __future__ import annotations

import logging
import signal
from typing import Annotated

import typer

from streamlearn.cli_common import (
    BootstrapOption,
    MetricsHostOption,
    check_duration,
    command_settings,
    fail,
    listening_port,
    port_option,
)

experiments_app = typer.Typer(
    rich_markup_mode=None,
    help="Experiments routing users between models (the `experiments` topic).",
    no_args_is_help=True,
)


def serve(
    port: Annotated[
        int | None,
        port_option("HTTP port [default: $STREAMLEARN_SERVE_PORT]", any_port=True),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes sharing the port (SO_REUSEPORT)")
    ] = 1,
    metrics_port: Annotated[
        int | None,
        port_option(
            "Also serve each process's own /metrics, /healthz and /readyz, plain HTTP: "
            "process i of --workers on this port + i (the shared port answers for "
            "whichever process takes the connection)"
        ),
    ] = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
) -> None:
    """Run a prediction worker: follow model.state, serve `POST /v1/models/{name}:predict`."""
    from streamlearn.http_tls import scheme, server_ssl_context
    from streamlearn.listen_errors import bind_error
    from streamlearn.models.configured import configured_specs
    from streamlearn.signing_key_check import WORKER_NEED, require_signing_key

    settings = command_settings(long_running=True, kafka_bootstrap=bootstrap_servers)
    listen = settings.serve_port if port is None else port  # 0: a free port, not the default
    if listen == 0 and workers > 1:
        fail(
            f"--port 0 with --workers {workers}: each process would get a port of its own; "
            "choose the one port they share"
        )
    own_ports = [] if metrics_port is None else [metrics_port + i for i in range(workers)]
    if own_ports and own_ports[-1] > 65535:
        fail(f"--metrics-port {metrics_port} with --workers {workers}: ports over 65535")
    if metrics_port is not None and listen in own_ports:
        # Free when checked: a process's own port then took the shared one (or it them),
        # and a worker failed to bind with a traceback after both were announced. Refused
        # whatever --host and --metrics-host are: one number for both is a slip.
        fail(f"{_metrics_ports_taken(metrics_port, workers)}, --port {listen} among them: "
             "choose ports apart")  # fmt: skip
    # Settings first, the serving package (River, SciPy, NumPy: seconds, ~30 on a cold small
    # machine) only once they hold: a missing key or model was said after that wait.
    require_signing_key(settings, WORKER_NEED)
    configured_specs(settings)
    ssl_context = server_ssl_context(settings)
    from aiohttp import web

    from streamlearn.serving import create_serving_app
    from streamlearn.serving.runner import check_bindable, run_workers

    for own in own_ports:
        try:
            check_bindable(metrics_host, own)
        except OSError as exc:  # said as the main port's is (which port, and what to do)
            raise bind_error(exc, metrics_host, own) from None

    def ready(message: str) -> None:
        processes = f", {workers} processes" if workers > 1 else ""
        typer.echo(
            f"prediction worker on {scheme(settings)}://{host}:{listening_port(message, listen)} "
            f"(models: {', '.join(settings.models)}{processes})"
        )
        for index, own in enumerate(own_ports):
            typer.echo(
                f"process {index}: metrics and probes on http://{metrics_host}:{own}/metrics"
            )

    def make_app(index: int) -> web.Application:
        return create_serving_app(
            settings,
            metrics_port=own_ports[index] if own_ports else None,
            metrics_host=metrics_host,
        )

    # run_app turns SIGINT and SIGTERM into a graceful exit: the cleanup context stops the
    # follower and flushes telemetry before the process ends.
    # No access log unless debugging: a log line per prediction costs more than the model.
    access_log = logging.getLogger("aiohttp.access") if settings.log_level == "DEBUG" else None
    # Each process builds its own app (its own follower of model.state and producer).
    code = run_workers(
        make_app, workers, host=host, port=listen, print=ready, access_log=access_log,
        ssl_context=ssl_context,
    )  # fmt: skip
    if code:
        raise typer.Exit(code)


def _metrics_ports_taken(metrics_port: int, workers: int) -> str:
    """What ``--metrics-port`` takes, said as its refusal starts."""
    if workers == 1:
        return f"--metrics-port {metrics_port} takes port {metrics_port}"
    last = metrics_port + workers - 1
    return (
        f"--metrics-port {metrics_port} with --workers {workers} takes ports {metrics_port}-{last}"
    )


def _parse_arm(text: str) -> tuple[str, str, float]:
    """``NAME=MODEL:WEIGHT`` (weight optional, default 1)."""
    name, sep, rest = text.partition("=")
    model, _, weight = rest.partition(":")
    if not sep or not name or not model:
        fail(f"--arm {text!r}: expected NAME=MODEL[:WEIGHT], e.g. control=ctr:0.5")
    try:
        return name, model, float(weight) if weight else 1.0
    except ValueError:
        fail(f"--arm {text!r}: weight {weight!r} is not a number")


@experiments_app.command("set")
def experiments_set(
    name: Annotated[str, typer.Argument(help="Experiment name (the record key)")],
    arm: Annotated[
        list[str],
        typer.Option(help="An arm as NAME=MODEL[:WEIGHT]; repeat for each arm, in order"),
    ],
    salt: Annotated[
        str | None, typer.Option(help="Assignment salt [default: the experiment name]")
    ] = None,
    description: Annotated[str | None, typer.Option(help="What the experiment tests")] = None,
    disable: Annotated[bool, typer.Option("--disable", help="Route nobody")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Create or replace an experiment on the compacted `experiments` topic."""
    from streamlearn.models import SPECS
    from streamlearn.serde import RegistryClient
    from streamlearn.serving.experiment_topic import publish_experiment, read_experiments
    from streamlearn.serving.experiments import (
        Arm,
        Experiment,
        name_problems,
        numeric_differences,
        overlaps,
        task_mismatches,
        unknown_models,
        unserved_models,
    )

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    experiment = Experiment(
        name=name,
        salt=salt if salt is not None else name,
        arms=tuple(Arm(*_parse_arm(text)) for text in arm),
        enabled=not disable,
        description=description,
    )
    problems = name_problems(experiment) + unknown_models(experiment, SPECS)
    problems += task_mismatches(experiment, SPECS)
    if problems:
        fail(f"experiment {name!r}: {'; '.join(problems)}")
    for difference in numeric_differences(experiment, SPECS):
        typer.echo(f"warning: {difference}", err=True)
    for unserved in unserved_models(experiment, settings.models):
        typer.echo(f"warning: {unserved}", err=True)
    with RegistryClient.for_settings(settings) as registry:
        for overlap in overlaps(experiment, read_experiments(settings, registry)):
            typer.echo(f"warning: {overlap}", err=True)
        publish_experiment(settings, registry, experiment)
    typer.echo(f"experiment {name} set")


@experiments_app.command("delete")
def experiments_delete(
    name: Annotated[str, typer.Argument(help="Experiment name")],
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Delete an experiment (a tombstone on `experiments`): workers stop routing by it, and
    `list` no longer shows it (a disabled one stays listed)."""
    from streamlearn.serde import RegistryClient
    from streamlearn.serving.experiment_topic import delete_experiment, read_experiments

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    # Names whose newest record the workers ignore count: their tombstone is what ends
    # `list`'s warning of them (refused as "no experiment", nothing could).
    named: set[str] = set()
    with RegistryClient.for_settings(settings) as registry:
        read_experiments(settings, registry, named=named)
    if name not in named:
        fail(f"no experiment {name!r}; there are: {', '.join(sorted(named)) or 'none'}")
    delete_experiment(settings, name)
    typer.echo(f"experiment {name} deleted")


@experiments_app.command("list")
def experiments_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Print the current experiments."""
    import json

    from streamlearn.serde import RegistryClient
    from streamlearn.serving.experiment_topic import read_experiments

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    ignored: list[str] = []
    with RegistryClient.for_settings(settings) as registry:
        experiments = read_experiments(settings, registry, ignored)
    for problem in ignored:
        typer.echo(f"warning: {problem}", err=True)
    for experiment in experiments:
        if as_json:
            record = experiment.to_record()
            record["updated_ts"] = record["updated_ts"].isoformat()
            typer.echo(json.dumps(record, sort_keys=True))
        else:
            arms = ", ".join(f"{a.name}={a.model_name}:{a.weight:g}" for a in experiment.arms)
            state = "enabled" if experiment.enabled else "disabled"
            typer.echo(f"{experiment.name}\t{state}\tsalt={experiment.salt}\t{arms}")


def simulate(
    rate: Annotated[float, typer.Option(help="Page views per second, bots included")] = 50.0,
    users: Annotated[int, typer.Option(help="Simulated people (bots come on top)")] = 1000,
    bot_share: Annotated[float, typer.Option(help="Share of page views made by bots")] = 0.05,
    duplicate_share: Annotated[float, typer.Option(help="Share of events sent twice")] = 0.02,
    late_share: Annotated[float, typer.Option(help="Share of events sent late")] = 0.03,
    malformed_share: Annotated[float, typer.Option(help="Share of invalid events")] = 0.01,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds [default: on Ctrl-C]")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the simulated world")] = 0,
    collector_url: Annotated[
        str, typer.Option(help="Collector base URL")
    ] = "http://127.0.0.1:8001",
    predict_url: Annotated[
        str, typer.Option(help="Prediction worker base URL")
    ] = "http://127.0.0.1:8000",
    model: Annotated[str, typer.Option(help="Model to ask for recommendation slots")] = "ctr",
    drift_at: Annotated[
        float | None, typer.Option(help="Change the true click model after S seconds")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
) -> None:
    """Send seeded traffic with a known click model through the collector and a worker."""
    import asyncio

    from streamlearn.http_tls import client_ssl_context
    from streamlearn.models import SPECS
    from streamlearn.serving.experiments import base_model
    from streamlearn.settings_values import http_url
    from streamlearn.simulate import LoopOptions, TrafficConfig, run_simulation
    from streamlearn.up.doors import Doors
    from streamlearn.up.simulation import check_drift_at

    check_duration(duration)
    try:
        check_drift_at(drift_at)
    except ValueError as exc:
        fail(str(exc))
    if base_model(model) not in SPECS:  # every request would be a 404
        fail(f"--model {model}: no model spec {base_model(model)!r} (known: {', '.join(SPECS)})")
    for option, url in (("--collector-url", collector_url), ("--predict-url", predict_url)):
        try:
            http_url(url)
        except ValueError as exc:
            fail(f"{option}: {exc}")
    settings = command_settings()
    # The doors `up` opens its own servers with: a write key for the collector, a token
    # for the prediction API, the configured CA for https URLs (all from the settings).
    doors = Doors.from_settings(settings)
    try:
        config = TrafficConfig(
            rate=rate, users=users, bot_share=bot_share, duplicate_share=duplicate_share,
            late_share=late_share, malformed_share=malformed_share, drift_at_s=drift_at, seed=seed,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    options = LoopOptions(
        collector_url=collector_url,
        predict_url=predict_url,
        model=model,
        duration_s=duration,
        ssl=client_ssl_context(settings),
        write_key=doors.write_key,
        api_token=doors.api_token,
    )

    async def main() -> tuple[str, list[str]]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        summary = await run_simulation(config, options, stop)
        said = summary.to_json() if as_json else summary.describe()
        return said, summary.unreached(collector_url, predict_url)

    said, unreached = asyncio.run(main())
    typer.echo(said)
    for problem in unreached:
        typer.echo(f"streamlearn: error: {problem}", err=True)
    if unreached:  # the summary is printed; a script can still tell nothing got through
        raise typer.Exit(1)
