"""The ``streamlearn`` command line."""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer
from confluent_kafka.admin import AdminClient

from streamlearn.exceptions import StreamlearnError
from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local import (
    BrokerConfig,
    EmbeddedKafka,
    PinnedJar,
    embedded_kafka,
    load_lock,
)
from streamlearn.settings import Settings, load_settings, settings_table
from streamlearn.topology import apply_topology, desired_topics, load_topology, plan_for_cluster
from streamlearn.topology.plan import DesiredTopic

app = typer.Typer(
    name="streamlearn",
    help="A production feedback loop for online models on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kafka_app = typer.Typer(help="The embedded single-node Apache Kafka (KRaft).", no_args_is_help=True)
topics_app = typer.Typer(help="Topics as code (topology/topics.yaml).", no_args_is_help=True)
config_app = typer.Typer(help="Settings.", no_args_is_help=True)
registry_app = typer.Typer(help="The Confluent-compatible schema registry.", no_args_is_help=True)
schemas_app = typer.Typer(help="Record schemas (schemas/*.avsc).", no_args_is_help=True)
agents_app = typer.Typer(help="The stream-processing agents (Faust).", no_args_is_help=True)
collector_app = typer.Typer(help="The HTTP telemetry collector.", no_args_is_help=True)
experiments_app = typer.Typer(
    help="Experiments routing users between models (the `experiments` topic).",
    no_args_is_help=True,
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(registry_app, name="registry")
app.add_typer(schemas_app, name="schemas")
app.add_typer(agents_app, name="agents")
app.add_typer(collector_app, name="collector")
app.add_typer(experiments_app, name="experiments")
app.add_typer(config_app, name="config")

log = logging.getLogger("streamlearn")

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Broker data directory [default: $STREAMLEARN_DATA_DIR/kafka]"),
]
BootstrapOption = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        help="Kafka bootstrap servers [default: $STREAMLEARN_KAFKA_BOOTSTRAP]",
    ),
]
TopologyOption = Annotated[
    Path | None,
    typer.Option("--file", help="Topology file [default: $STREAMLEARN_TOPOLOGY_FILE]"),
]


def _fail(message: str) -> NoReturn:
    typer.echo(f"streamlearn: error: {message}", err=True)
    raise typer.Exit(1)


def _settings(**overrides: object) -> Settings:
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level != "DEBUG":
        # Client libraries log every request and rebalance at INFO; ours say what matters.
        for noisy in ("httpx", "httpx2", "aiokafka", "kafka", "faust", "mode", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


def _progress(jar: PinnedJar, index: int, total: int) -> None:
    typer.echo(f"fetching {jar.file_name} ({index}/{total}, {jar.size / 1e6:.1f} MB)", err=True)


def _broker(settings: Settings, port: int, data_dir: Path | None) -> EmbeddedKafka:
    return embedded_kafka(settings, port=port, data_dir=data_dir, on_fetch=_progress)


def _broker_handle(settings: Settings, data_dir: Path | None) -> EmbeddedKafka:
    """The broker of a data directory, for stop/status: no Java check, no jar download."""
    return EmbeddedKafka(BrokerConfig(data_dir=data_dir or settings.data_dir / "kafka"), [])


def _terminate_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks stop what was started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Download and verify the broker's pinned jars into the cache (no broker is started)."""
    settings = _settings()
    lock = load_lock()
    broker = _broker(settings, 9092, None)
    where = broker.classpath[0].parent
    typer.echo(f"Apache Kafka {lock.kafka_version}: {len(broker.classpath)} jars verified, {where}")


@kafka_app.command("start")
def kafka_start(
    port: Annotated[int, typer.Option(help="Broker (client) port on 127.0.0.1")] = 9092,
    data_dir: DataDirOption = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run until interrupted")] = False,
) -> None:
    """Start the embedded broker and print its bootstrap address."""
    settings = _settings()
    broker = _broker(settings, port, data_dir)
    status = broker.start(timeout_s=settings.kafka_start_timeout_s)
    typer.echo(status.bootstrap)
    if not foreground:
        return
    _terminate_on_sigterm()
    try:
        code = broker.wait()
    except KeyboardInterrupt:
        broker.stop()
        return
    _fail(f"Kafka exited with code {code}; see {broker.config.server_log_dir / 'server.log'}")


@kafka_app.command("stop")
def kafka_stop(data_dir: DataDirOption = None) -> None:
    """Stop the embedded broker of the data directory."""
    settings = _settings()
    typer.echo("stopped" if _broker_handle(settings, data_dir).stop() else "not running")


@kafka_app.command("status")
def kafka_status(data_dir: DataDirOption = None) -> None:
    """Tell whether the embedded broker runs; exit code 0 when it runs, 3 when not."""
    settings = _settings()
    status = _broker_handle(settings, data_dir).status()
    typer.echo(status.describe())
    if not status.running:
        raise typer.Exit(3)


def _desired(settings: Settings, file: Path | None) -> list[DesiredTopic]:
    topology = load_topology(file or settings.topology_file)
    return desired_topics(topology, settings.topic_prefix, settings.topic_replication_factor)


@topics_app.command("diff")
def topics_diff(file: TopologyOption = None, bootstrap_servers: BootstrapOption = None) -> None:
    """Show what `topics apply` would change; exit code 1 if a change would be refused."""
    settings = _settings(kafka_bootstrap=bootstrap_servers)
    plan = plan_for_cluster(AdminClient(confluent_config(settings)), _desired(settings, file))
    typer.echo(plan.describe())
    if plan.refusals:
        raise typer.Exit(1)


@topics_app.command("apply")
def topics_apply(
    file: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the changes")] = False,
) -> None:
    """Create missing topics and align their configs (idempotent)."""
    settings = _settings(kafka_bootstrap=bootstrap_servers)
    admin = AdminClient(confluent_config(settings))
    desired = _desired(settings, file)
    if dry_run:
        plan = plan_for_cluster(admin, desired)
        typer.echo(plan.describe())
        raise typer.Exit(1 if plan.refusals else 0)
    plan = apply_topology(admin, desired)
    typer.echo(plan.describe())
    if plan.changes:
        typer.echo(f"applied {len(plan.changes)} change(s)")


@registry_app.command("serve")
def registry_serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8081,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Serve the schema registry API, stored on the compacted `_schemas` topic."""
    from aiohttp import web

    from streamlearn.registry import create_registry_app, registry_topic

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    topic = registry_topic(settings)

    def ready(message: str) -> None:
        typer.echo(f"schema registry on http://{host}:{port} (state: {topic})")

    web.run_app(create_registry_app(settings), host=host, port=port, print=ready)


@schemas_app.command("register")
def schemas_register(
    file: TopologyOption = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="[default: $STREAMLEARN_SCHEMA_REGISTRY_URL]"),
    ] = None,
) -> None:
    """Register the value schema of every topic of the topology (idempotent)."""
    from streamlearn.serde.registration import register_topology_schemas

    settings = _settings(schema_registry_url=registry_url)
    for subject, schema, schema_id in register_topology_schemas(
        settings, file or settings.topology_file
    ):
        typer.echo(f"{subject}: {schema} id {schema_id}")


@agents_app.command("run")
def agents_run(
    only: Annotated[
        str | None,
        typer.Option("--only", help="Comma-separated agents to run [default: all]"),
    ] = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Run agents in one worker process; more processes share the partitions."""
    import faust

    from streamlearn.agents.app import AGENT_NAMES, create_faust_app

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    chosen = tuple(a.strip() for a in only.split(",")) if only else AGENT_NAMES
    app, _ = create_faust_app(settings, chosen)
    typer.echo(f"agents {', '.join(chosen)} joining group {app.conf.id}")
    # faust's Worker installs SIGINT/SIGTERM handlers that stop the app cleanly
    # (commit offsets, flush producers) and exits non-zero on a crash.
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True)
    worker.execute_from_commandline()


@collector_app.command("serve")
def collector_serve(
    port: Annotated[int, typer.Option(help="HTTP port")] = 8001,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Accept telemetry over HTTP (`POST /v1/events`) and produce it to Kafka as Avro."""
    from aiohttp import web

    from streamlearn.collector.app import create_collector_app

    settings = _settings(kafka_bootstrap=bootstrap_servers)

    def ready(message: str) -> None:
        typer.echo(f"collector on http://{host}:{port}/v1/events")

    web.run_app(create_collector_app(settings), host=host, port=port, print=ready)


@app.command("serve")
def serve(
    port: Annotated[
        int | None, typer.Option(help="HTTP port [default: $STREAMLEARN_SERVE_PORT]")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Run a prediction worker: follow model.state, serve `POST /v1/models/{name}:predict`."""
    from aiohttp import web

    from streamlearn.serving import create_serving_app

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    listen = port or settings.serve_port

    def ready(message: str) -> None:
        typer.echo(f"prediction worker on http://{host}:{listen} (models: {settings.models})")

    # run_app turns SIGINT and SIGTERM into a graceful exit: the cleanup context stops the
    # follower and flushes telemetry before the process ends.
    # No access log unless debugging: a log line per prediction costs more than the model.
    access_log = logging.getLogger("aiohttp.access") if settings.log_level == "DEBUG" else None
    serving_app = create_serving_app(settings)
    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # garbage collector's scans (~8% less CPU per request, measured with bench/predict.py).
    gc.freeze()
    web.run_app(serving_app, host=host, port=listen, print=ready, access_log=access_log)


def _parse_arm(text: str) -> tuple[str, str, float]:
    """``NAME=MODEL:WEIGHT`` (weight optional, default 1)."""
    name, sep, rest = text.partition("=")
    model, _, weight = rest.partition(":")
    if not sep or not name or not model:
        _fail(f"--arm {text!r}: expected NAME=MODEL[:WEIGHT], e.g. control=ctr:0.5")
    try:
        return name, model, float(weight) if weight else 1.0
    except ValueError:
        _fail(f"--arm {text!r}: weight {weight!r} is not a number")


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
    from streamlearn.serde import RegistryClient
    from streamlearn.serving.experiment_topic import publish_experiment
    from streamlearn.serving.experiments import Arm, Experiment

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    experiment = Experiment(
        name=name,
        salt=salt if salt is not None else name,
        arms=tuple(Arm(*_parse_arm(text)) for text in arm),
        enabled=not disable,
        description=description,
    )
    with RegistryClient(settings.schema_registry_url) as registry:
        publish_experiment(settings, registry, experiment)
    typer.echo(f"experiment {name} set")


@experiments_app.command("list")
def experiments_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Print the current experiments."""
    import json

    from streamlearn.serde import RegistryClient
    from streamlearn.serving.experiment_topic import read_experiments

    settings = _settings(kafka_bootstrap=bootstrap_servers)
    with RegistryClient(settings.schema_registry_url) as registry:
        experiments = read_experiments(settings, registry)
    for experiment in experiments:
        if as_json:
            record = experiment.to_record()
            record["updated_ts"] = record["updated_ts"].isoformat()
            typer.echo(json.dumps(record, sort_keys=True))
        else:
            arms = ", ".join(f"{a.name}={a.model_name}:{a.weight:g}" for a in experiment.arms)
            state = "enabled" if experiment.enabled else "disabled"
            typer.echo(f"{experiment.name}\t{state}\tsalt={experiment.salt}\t{arms}")


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    for name, value in settings:
        typer.echo(f"{name} = {value}")


@config_app.command("docs")
def config_docs() -> None:
    """Print the configuration table of the README (Markdown)."""
    typer.echo(settings_table(), nl=False)


@app.command("up")
def up(
    bootstrap_servers: BootstrapOption = None,
    port: Annotated[int, typer.Option(help="Port of the embedded broker")] = 9092,
    data_dir: DataDirOption = None,
    registry_port: Annotated[int, typer.Option(help="Port of the schema registry")] = 8081,
    collector_port: Annotated[int, typer.Option(help="Port of the collector")] = 8001,
    serve_port: Annotated[int, typer.Option(help="Port of the prediction worker")] = 8000,
    schema_registry_url: Annotated[
        str | None,
        typer.Option("--schema-registry-url", help="Use this registry instead of starting one"),
    ] = None,
) -> None:
    """Run the system on this machine (Ctrl-C or SIGTERM stops what it started).

    Starts the embedded broker unless --bootstrap-servers is given, applies the topology,
    starts the schema registry unless --schema-registry-url is given, registers the schemas,
    runs the agents, and serves the collector and a prediction worker.
    """
    import asyncio

    from streamlearn.up import UpOptions, run_up

    settings = _settings(kafka_bootstrap=bootstrap_servers, schema_registry_url=schema_registry_url)
    options = UpOptions(
        embedded_kafka=bootstrap_servers is None,
        kafka_port=port,
        data_dir=data_dir,
        start_registry=schema_registry_url is None,
        registry_port=registry_port,
        collector_port=collector_port,
        serve_port=serve_port,
    )
    asyncio.run(run_up(settings, options, typer.echo, on_fetch=_progress))


@app.command("simulate")
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
    seed: Annotated[int, typer.Option(help="Seed of the simulated world")] = 0,
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

    from streamlearn.simulate import LoopOptions, TrafficConfig, run_simulation

    _settings()
    try:
        config = TrafficConfig(
            rate=rate, users=users, bot_share=bot_share, duplicate_share=duplicate_share,
            late_share=late_share, malformed_share=malformed_share, drift_at_s=drift_at, seed=seed,
        )  # fmt: skip
    except ValueError as exc:
        _fail(str(exc))
    options = LoopOptions(
        collector_url=collector_url, predict_url=predict_url, model=model, duration_s=duration
    )

    async def main() -> str:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        summary = await run_simulation(config, options, stop)
        return summary.to_json() if as_json else summary.describe()

    typer.echo(asyncio.run(main()))


def main() -> None:
    try:
        app()
    except StreamlearnError as exc:
        typer.echo(f"streamlearn: error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
