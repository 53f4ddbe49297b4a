"""The ``streamlearn`` command line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from confluent_kafka.admin import AdminClient

from streamlearn.cli_acls import acls_app
from streamlearn.cli_archive import archive_app
from streamlearn.cli_common import (
    BootstrapOption,
    DataDirOption,
    MetricsHostOption,
    MetricsPortOption,
    TopologyOption,
    chosen_agents,
    command_settings,
    default_agents_group,
    fail,
    fetch_progress,
    listening_port,
    optional_group_name,
    port_option,
)
from streamlearn.cli_dashboard import dashboard
from streamlearn.cli_errors import one_line_error
from streamlearn.cli_keys import keys_app
from streamlearn.cli_loop import experiments_app, serve, simulate
from streamlearn.cli_replay import replay_app
from streamlearn.cli_up import up
from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local import (
    BrokerConfig,
    EmbeddedKafka,
    embedded_kafka,
    load_lock,
)
from streamlearn.settings import Settings
from streamlearn.settings_table import settings_table
from streamlearn.settings_values import shown_setting
from streamlearn.topology import apply_topology, desired_topics, load_topology, plan_for_cluster
from streamlearn.topology.catalogue import topology_path
from streamlearn.topology.plan import DesiredTopic

app = typer.Typer(
    rich_markup_mode=None,
    name="streamlearn",
    help="A production feedback loop for online models on Apache Kafka.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kafka_app = typer.Typer(
    rich_markup_mode=None,
    help="The embedded single-node Apache Kafka (KRaft).",
    no_args_is_help=True,
)
topics_app = typer.Typer(
    rich_markup_mode=None, help="Topics as code (topology/topics.yaml).", no_args_is_help=True
)
config_app = typer.Typer(rich_markup_mode=None, help="Settings.", no_args_is_help=True)
registry_app = typer.Typer(
    rich_markup_mode=None, help="The Confluent-compatible schema registry.", no_args_is_help=True
)
schemas_app = typer.Typer(
    rich_markup_mode=None, help="Record schemas (schemas/*.avsc).", no_args_is_help=True
)
agents_app = typer.Typer(
    rich_markup_mode=None, help="The stream-processing agents (Faust).", no_args_is_help=True
)
collector_app = typer.Typer(
    rich_markup_mode=None, help="The HTTP telemetry collector.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(registry_app, name="registry")
app.add_typer(schemas_app, name="schemas")
app.add_typer(agents_app, name="agents")
app.add_typer(collector_app, name="collector")
app.add_typer(experiments_app, name="experiments")
app.add_typer(replay_app, name="replay")
app.add_typer(archive_app, name="archive")
app.add_typer(keys_app, name="keys")
app.add_typer(acls_app, name="acls")
app.command("serve")(serve)
app.command("simulate")(simulate)
app.command("up")(up)
app.command("dashboard")(dashboard)
app.add_typer(config_app, name="config")

log = logging.getLogger("streamlearn")


def _broker(
    settings: Settings, port: int, data_dir: Path | None, secure: bool = False, acls: bool = False
) -> EmbeddedKafka:
    return embedded_kafka(
        settings, port=port, data_dir=data_dir, on_fetch=fetch_progress, secure=secure, acls=acls
    )


def _broker_handle(settings: Settings, data_dir: Path | None) -> EmbeddedKafka:
    """The broker of a data directory, for stop/status: no Java check, no jar download."""
    from streamlearn.kafka_local.secure import existing_secure_material

    directory = data_dir or settings.data_dir / "kafka"
    return EmbeddedKafka(
        BrokerConfig(data_dir=directory, secure=existing_secure_material(directory)), []
    )


def _terminate_on_sigterm() -> None:
    """Make SIGTERM unwind like Ctrl-C, so ``finally`` blocks stop what was started."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _refuse_a_running_broker(broker: EmbeddedKafka) -> None:
    """``--foreground`` owns the broker it runs; one another command started is not its own
    to wait for or stop, so say whose it is and how to run it in the foreground instead."""
    running = broker.status()
    if running.running:
        directory = broker.config.data_dir
        fail(
            f"the broker of {directory} is already running at {running.bootstrap} (pid "
            f"{running.pid}), started by another command; --foreground runs only a broker "
            f"it starts: `streamlearn kafka stop --data-dir {directory}` first, or use it as it is"
        )


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Download and verify the broker's pinned jars into the cache (no broker is started)."""
    settings = command_settings()
    lock = load_lock()
    broker = _broker(settings, 9092, None)
    where = broker.classpath[0].parent
    typer.echo(f"Apache Kafka {lock.kafka_version}: {len(broker.classpath)} jars verified, {where}")


@kafka_app.command("start")
def kafka_start(
    port: Annotated[int, port_option("Broker (client) port on 127.0.0.1")] = 9092,
    data_dir: DataDirOption = None,
    foreground: Annotated[bool, typer.Option("--foreground", help="Run until interrupted")] = False,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="SASL_SSL with SCRAM-SHA-512 users and a development CA (kept in the data "
            "directory, which stays secure)",
        ),
    ] = False,
    acls: Annotated[
        bool,
        typer.Option(
            "--acls",
            help="With --secure: Kafka's StandardAuthorizer and a SCRAM user per part "
            "(client-<part>.yaml beside client.yaml); see `streamlearn acls`",
        ),
    ] = False,
) -> None:
    """Start the embedded broker and print its bootstrap address."""
    settings = command_settings()
    broker = _broker(settings, port, data_dir, secure, acls)
    if foreground:
        _refuse_a_running_broker(broker)
        # Before the start, not after it: a signal while the broker is still starting must
        # stop it too (it runs in its own session, so nothing else would).
        _terminate_on_sigterm()
    try:
        status = broker.start(timeout_s=settings.kafka_start_timeout_s)
    except KeyboardInterrupt:
        if not foreground:
            raise
        broker.stop()
        typer.echo(
            f"interrupted while starting: the broker of {broker.config.data_dir} stopped",
            err=True,
        )
        return
    typer.echo(status.bootstrap)
    if status.bootstrap is not None and not status.bootstrap.endswith(f":{port}"):
        typer.echo(
            f"warning: the broker of {broker.config.data_dir} was already running at "
            f"{status.bootstrap}, not on --port {port}: `streamlearn kafka stop` first to move it",
            err=True,
        )
    material = broker.config.secure
    if material is not None:
        typer.echo(
            f"SASL_SSL (SCRAM-SHA-512); clients connect with the settings in "
            f"{material.client_settings_path}: export "
            f"STREAMLEARN_CONFIG_FILE={material.client_settings_path}",
            err=True,
        )
        if material.authorizer:
            typer.echo(
                f"ACLs enforced (StandardAuthorizer); each part's own user: "
                f"{material.directory}/client-<part>.yaml; `streamlearn acls apply` grants them",
                err=True,
            )
    if not foreground:
        return
    try:
        code = broker.wait()
    except KeyboardInterrupt:
        broker.stop()
        return
    fail(f"Kafka exited with code {code}; see {broker.config.server_log_dir / 'server.log'}")


@kafka_app.command("stop")
def kafka_stop(data_dir: DataDirOption = None) -> None:
    """Stop the embedded broker of the data directory."""
    settings = command_settings()
    typer.echo("stopped" if _broker_handle(settings, data_dir).stop() else "not running")


@kafka_app.command("status")
def kafka_status(data_dir: DataDirOption = None) -> None:
    """Tell whether the embedded broker runs; exit code 0 when it runs, 3 when not."""
    settings = command_settings()
    status = _broker_handle(settings, data_dir).status()
    typer.echo(status.describe())
    if not status.running:
        raise typer.Exit(3)


def _desired(settings: Settings, file: Path | None) -> list[DesiredTopic]:
    topology = load_topology(file or topology_path(settings))
    return desired_topics(topology, settings.topic_prefix, settings.topic_replication_factor)


@topics_app.command("diff")
def topics_diff(file: TopologyOption = None, bootstrap_servers: BootstrapOption = None) -> None:
    """Show what `topics apply` would change; exit code 1 if a change would be refused."""
    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    admin = AdminClient(confluent_config(settings))
    plan = plan_for_cluster(admin, _desired(settings, file), prefix=settings.topic_prefix)
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
    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    admin = AdminClient(confluent_config(settings))
    desired = _desired(settings, file)
    if dry_run:
        plan = plan_for_cluster(admin, desired, prefix=settings.topic_prefix)
        typer.echo(plan.describe())
        raise typer.Exit(1 if plan.refusals else 0)
    plan = apply_topology(admin, desired, prefix=settings.topic_prefix)
    typer.echo(plan.describe())
    if plan.changes:
        typer.echo(f"applied {len(plan.changes)} change(s)")


@registry_app.command("serve")
def registry_serve(
    port: Annotated[int, port_option("HTTP port", any_port=True)] = 8081,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Serve the schema registry API, stored on the compacted `_schemas` topic."""
    from aiohttp import web

    from streamlearn.http_tls import scheme, server_ssl_context
    from streamlearn.registry import create_registry_app, registry_topic

    settings = command_settings(long_running=True, kafka_bootstrap=bootstrap_servers)
    topic = registry_topic(settings)
    ssl_context = server_ssl_context(settings)

    def ready(message: str) -> None:
        bound = listening_port(message, port)
        typer.echo(f"schema registry on {scheme(settings)}://{host}:{bound} (state: {topic})")

    web.run_app(
        create_registry_app(settings), host=host, port=port, print=ready, ssl_context=ssl_context
    )


@schemas_app.command("register")
def schemas_register(
    file: TopologyOption = None,
    registry_url: Annotated[
        str | None,
        typer.Option("--registry-url", help="[default: $STREAMLEARN_SCHEMA_REGISTRY_URL]"),
    ] = None,
) -> None:
    """Register the value schema of every topic of the topology (idempotent)."""
    from streamlearn.topology.registration import register_topology_schemas

    settings = command_settings(schema_registry_url=registry_url)
    # One retry: a registry that cannot write answers after its own write timeout, and
    # confluent-kafka's three retries kept a user waiting two minutes without a word.
    for subject, schema, schema_id in register_topology_schemas(
        settings, file or topology_path(settings), retries=1
    ):
        typer.echo(f"{subject}: {schema} id {schema_id}")


@agents_app.command("run")
def agents_run(
    only: Annotated[
        str | None,
        typer.Option(
            "--only",
            help="Comma-separated agents to run [default: the four pipeline agents; the "
            "monitor reads their inputs, so it runs as its own worker]",
        ),
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            help="Consumer group (Faust app id); its workers must run the same agents "
            "[default: streamlearn-agents, for the default agents only]",
            callback=optional_group_name,
            show_default=False,
        ),
    ] = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Run agents in one worker process; more processes share the partitions."""
    from streamlearn.agents import AGENT_NAMES, PIPELINE_AGENTS, STEPS
    from streamlearn.agents.settings_check import check_agents_settings

    settings = command_settings(long_running=True, kafka_bootstrap=bootstrap_servers)
    chosen = chosen_agents(only, AGENT_NAMES, PIPELINE_AGENTS)
    group = group or default_agents_group(chosen, PIPELINE_AGENTS)
    # Before Faust and the agents load (River, SciPy, NumPy: seconds): a missing key or an
    # unknown model was said only after that wait.
    check_agents_settings(settings, chosen)
    import faust

    from streamlearn.garbage_collection import settle_long_lived_heap
    from streamlearn.log_repeats import quiet_repeats
    from streamlearn.runtime.broker_probe import BrokerProbe
    from streamlearn.runtime.exceptions import RuntimeConfigurationError
    from streamlearn.runtime.group_settings import GroupSettingsWatch, watch_group_settings
    from streamlearn.runtime.health import WorkerHealth, serve_health
    from streamlearn.runtime.kafka_wait import saying_while_waiting_for_kafka
    from streamlearn.runtime.partition_growth import (
        PARTITIONS_GREW_EXIT,
        PartitionGrowthWatch,
        stop_when_partitions_grow,
    )
    from streamlearn.runtime.worker import create_faust_app

    # Its start asks Kafka for its topics' partition counts (up to 30 s each): a broker
    # away was 32 s of silence, so the wait is said, with the address it waits for.
    waiting_for_kafka = logging.getLogger("streamlearn.agents").warning
    try:
        with saying_while_waiting_for_kafka(settings.kafka_bootstrap, waiting_for_kafka):
            runtime = create_faust_app(settings, [STEPS[name] for name in chosen], group=group)
    except RuntimeConfigurationError as exc:
        fail(str(exc))
    app = runtime.app
    # Faust's own lines about Kafka away, once per 10 s as aiokafka's (command_settings).
    quiet_repeats(("faust",))
    if "learner" in chosen:  # Kafka fences workers within a group, not two groups
        from streamlearn.runtime.learner_groups import second_learner_group

        with saying_while_waiting_for_kafka(settings.kafka_bootstrap, waiting_for_kafka):
            problem = second_learner_group(app, settings)
        if problem is not None:
            fail(problem)
    typer.echo(f"agents {', '.join(chosen)} joining group {app.conf.id}")
    watch_group_settings(app, GroupSettingsWatch(settings, app.conf.id, chosen))
    # Its writers and stores keep the counts it started with: a topic grown under it
    # (`topics apply`) stops it, to be started again on the new count.
    growth = PartitionGrowthWatch(settings, runtime.started_partitions, runtime.input_topics())
    stop_when_partitions_grow(app, growth)
    if metrics_port is not None:
        health = WorkerHealth(app, probe=BrokerProbe(settings).start())
        health.install()
        server = serve_health(health, runtime.metrics.registry, metrics_host, metrics_port)
        bound = server.server_address[1]  # --metrics-port 0: the port the system chose
        typer.echo(f"metrics and probes on http://{metrics_host}:{bound}/metrics")
    # faust's Worker installs SIGINT/SIGTERM handlers that stop the app cleanly
    # (commit offsets, flush producers) and exits non-zero on a crash. Its stdout/stderr
    # stay the process's own: redirected, every write became a log line (a thread's
    # traceback, one caret per WARNING line).
    # Faust sets the root logger's level: DEBUG stays streamlearn's own (command_settings).
    root_level = "INFO" if settings.log_level == "DEBUG" else settings.log_level
    worker = faust.Worker(app, loglevel=root_level, quiet=True, redirect_stdouts=False)
    settle_long_lived_heap()
    try:
        worker.execute_from_commandline()
    except SystemExit as stopped:
        # Stopped cleanly for a grown topic: a status of its own, for its supervisor.
        if growth.grown and stopped.code in (0, None):
            raise SystemExit(PARTITIONS_GREW_EXIT) from None
        raise


@collector_app.command("serve")
def collector_serve(
    port: Annotated[int, port_option("HTTP port", any_port=True)] = 8001,
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Accept telemetry over HTTP (`POST /v1/events`) and produce it to Kafka as Avro."""
    from streamlearn.collector.runner import run_collector
    from streamlearn.http_tls import scheme

    settings = command_settings(long_running=True, kafka_bootstrap=bootstrap_servers)

    def ready(message: str) -> None:
        bound = listening_port(message, port)
        typer.echo(f"collector on {scheme(settings)}://{host}:{bound}/v1/events")

    run_collector(settings, host=host, port=port, print=ready)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (secrets masked)."""
    from streamlearn.models.configured import configured_specs  # River: only here

    settings = command_settings()
    for name, value in settings:
        typer.echo(f"{name} = {shown_setting(value)}")
    # What every part refuses at its start, said here too: the model settings are checked
    # where the specs are built from them, not when the settings load.
    configured_specs(settings)


@config_app.command("docs")
def config_docs() -> None:
    """Print the configuration table of the README (Markdown)."""
    typer.echo(settings_table(), nl=False)


def main(args: list[str] | None = None) -> None:
    """The console script: ``args`` (default: the process's) run as a command line, a
    known failure printed as one line with exit status 1."""
    from streamlearn.orphan_watch import stop_when_orphaned
    from streamlearn.stacks_on_signal import write_stacks_on_signal

    write_stacks_on_signal()
    stop_when_orphaned()
    try:
        app(args=args)
    except Exception as exc:
        reason = one_line_error(exc)
        if reason is None:
            raise
        typer.echo(f"streamlearn: error: {reason}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
