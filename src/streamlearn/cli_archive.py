"""The archive's commands: ``archive run`` (the agent) and ``archive ls`` (its files).

Registered on the main command line by :mod:`streamlearn.cli`. S3 credentials come from
the environment or AWS's usual configuration (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``), never from options:
a command line is visible to every user of the machine.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.cli_common import (
    BootstrapOption,
    MetricsHostOption,
    MetricsPortOption,
    command_settings,
    group_name,
)
from streamlearn.exceptions import StreamlearnError
from streamlearn.settings_values import http_url

if TYPE_CHECKING:
    from streamlearn.archive.storage import ArchiveStore

archive_app = typer.Typer(
    rich_markup_mode=None,
    help="Archive topics to hourly Avro or Parquet files (local directory or S3), exactly once.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class FileFormat(StrEnum):
    avro = "avro"
    parquet = "parquet"


class StartAt(StrEnum):
    earliest = "earliest"
    latest = "latest"


RootOption = Annotated[
    str | None,
    typer.Option(
        "--root",
        help="Local directory or s3://bucket/prefix "
        "[default: $STREAMLEARN_ARCHIVE_ROOT, else $STREAMLEARN_DATA_DIR/archive]",
    ),
]
EndpointOption = Annotated[
    str | None,
    typer.Option(
        "--s3-endpoint-url",
        envvar="AWS_ENDPOINT_URL_S3",
        help="S3-compatible endpoint (MinIO, Ceph, R2...) [default: AWS]",
        show_envvar=True,
    ),
]
RegionOption = Annotated[
    str | None,
    typer.Option("--s3-region", envvar="AWS_REGION", help="S3 region", show_envvar=True),
]


def storage_options(root: str, endpoint_url: str | None, region: str | None) -> dict[str, Any]:
    """fsspec options of ``root`` from the S3 options (credentials: the AWS chain). A
    command's root is a local directory or S3: fsspec's in-memory file system (which the
    archive's own tests use) lives and dies with one process."""
    if root.startswith("memory://"):
        raise ArchiveError(f"archive root {root}: a local directory or s3://bucket/prefix")
    if not root.startswith(("s3://", "s3a://")):
        return {}
    options: dict[str, Any] = {}
    if endpoint_url:
        try:
            http_url(endpoint_url)
        except ValueError as exc:
            raise ArchiveError(f"--s3-endpoint-url: {exc}") from None
        options["endpoint_url"] = endpoint_url
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


@archive_app.command("run")
def archive_run(
    topics: Annotated[
        str | None,
        typer.Option(
            "--topics",
            help="Comma-separated topology names or patterns "
            "[default: telemetry.*,events.clean,events.sessions,training.examples]",
        ),
    ] = None,
    root: RootOption = None,
    file_format: Annotated[
        FileFormat, typer.Option("--format", help="File format")
    ] = FileFormat.avro,
    compression: Annotated[
        str | None,
        typer.Option(help="Avro codec or Parquet compression [default: snappy]"),
    ] = None,
    group: Annotated[
        str,
        typer.Option(
            help="Consumer group (namespace prefix added); workers share it", callback=group_name
        ),
    ] = "streamlearn-archive",
    max_file_records: Annotated[
        int, typer.Option(min=1, help="A file closes at this many records")
    ] = 100_000,
    max_file_bytes: Annotated[
        int,
        typer.Option(min=1, help="A file closes at this many bytes of Kafka keys and values"),
    ] = 64 * 1024 * 1024,
    idle_close_s: Annotated[
        float,
        typer.Option(min=0.001, help="A file that got no record for this long closes"),
    ] = 60.0,
    start_at: Annotated[
        StartAt,
        typer.Option(help="Where a partition without archived files starts"),
    ] = StartAt.earliest,
    staging_dir: Annotated[
        Path | None,
        typer.Option(
            help="In-progress files for an S3 root "
            "[default: $STREAMLEARN_DATA_DIR/archive-staging/<group>-<root's hash>]"
        ),
    ] = None,
    retention_hours: Annotated[
        float | None,
        typer.Option(
            min=0.001,
            help="Delete files whose hour ended longer ago, but each partition's newest "
            "[default: STREAMLEARN_ARCHIVE_RETENTION_HOURS; unset: keep them]",
        ),
    ] = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = "127.0.0.1",
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Archive topics to files partitioned by hour; workers of one group share partitions."""
    from streamlearn.archive import ArchiveAgent, ArchiveConfig, ArchiveMetrics, Limits
    from streamlearn.archive.config import default_root
    from streamlearn.archive.topics import DEFAULT_TOPICS

    settings = command_settings(long_running=True, kafka_bootstrap=bootstrap_servers)
    chosen_root = root or default_root(settings)
    config = ArchiveConfig(
        root=chosen_root,
        topics=tuple(topics.split(",")) if topics else DEFAULT_TOPICS,
        format="avro" if file_format is FileFormat.avro else "parquet",
        compression=compression,
        group=group,
        limits=Limits(max_file_records, max_file_bytes, idle_close_s),
        staging_dir=staging_dir,
        storage_options=storage_options(chosen_root, s3_endpoint_url, s3_region),
        start_at="earliest" if start_at is StartAt.earliest else "latest",
        retention_hours=(
            retention_hours if retention_hours is not None else settings.archive_retention_hours
        ),
    )
    metrics = ArchiveMetrics()
    agent = ArchiveAgent(settings, config, metrics=metrics)
    typer.echo(
        f"archiving {', '.join(sorted(agent.topics))} to {agent.store.describe()} "
        f"({config.format}, group {agent.group})"
    )
    if metrics_port is not None:
        from streamlearn.archive.health import ArchiveHealth
        from streamlearn.runtime.broker_probe import BrokerProbe
        from streamlearn.runtime.health import serve_health

        health = ArchiveHealth(agent, probe=BrokerProbe(settings).start())
        server = serve_health(health, metrics.registry, metrics_host, metrics_port)
        bound = server.server_address[1]  # --metrics-port 0: the port the system chose
        typer.echo(f"metrics and probes on http://{metrics_host}:{bound}/metrics")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent.run(stop)


def _store_and_topics(
    topic: list[str] | None, root: str | None, endpoint_url: str | None, region: str | None
) -> tuple[ArchiveStore, list[str]]:
    """The archive root (refused when missing) and the Kafka names of the topics asked for
    (every topic under the root by default; a topology name not declared is refused)."""
    from streamlearn.archive.config import default_root
    from streamlearn.archive.storage import ArchiveStore
    from streamlearn.topology.catalogue import TopicCatalogue

    settings = command_settings()
    chosen_root = root or default_root(settings)
    store = ArchiveStore(
        chosen_root, storage_options=storage_options(chosen_root, endpoint_url, region)
    )
    store.require_root()
    if topic:
        catalogue = TopicCatalogue.from_settings(settings)
        # Each once: a topic named twice would list its files twice, each "overlapping"
        # itself, and be expired twice.
        return store, list(dict.fromkeys(catalogue.topic(t).name for t in topic))
    return store, store.list_topics()


@archive_app.command("ls")
def archive_ls(
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Topology name of a topic to list (repeat) [default: every topic]"),
    ] = None,
    root: RootOption = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
) -> None:
    """List the archive's final files with their offset ranges; exit 1 if ranges overlap."""
    from streamlearn.archive.layout import bucket_directory, overlaps

    store, names = _store_and_topics(topic, root, s3_endpoint_url, s3_region)
    found = []
    for name in names:
        files = store.list_files(name)
        found += files
        for file in files:
            typer.echo(
                f"{file.topic}\t{file.partition}\t{file.first_offset}-{file.last_offset}\t"
                f"{bucket_directory(file.bucket_ms)}\t{store.size(file)}\t{file.path}"
            )
    if not found:
        typer.echo(f"no archive files under {store.describe()}", err=True)
    problems = overlaps(found)
    for before, after in problems:
        typer.echo(f"overlap: {before.path} and {after.path}", err=True)
    if problems:
        raise typer.Exit(1)


@archive_app.command("expire")
def archive_expire(
    older_than_hours: Annotated[
        float,
        typer.Option(min=0.0, help="Delete files whose hour ended more than this many hours ago"),
    ],
    topic: Annotated[
        list[str] | None,
        typer.Option(help="Topology name of a topic to expire (repeat) [default: every topic]"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing")
    ] = False,
    root: RootOption = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
) -> None:
    """Delete archive files past a retention; each partition's newest file stays (it says
    where the archive continues)."""
    from streamlearn.archive.retention import past_retention

    store, names = _store_and_topics(topic, root, s3_endpoint_url, s3_region)
    cutoff_ms = int((time.time() - older_than_hours * 3600) * 1000)
    count = size = 0
    for name in names:
        for file in past_retention(store.list_files(name), cutoff_ms):
            size += store.size(file)
            count += 1
            typer.echo(file.path)
            if not dry_run:
                store.delete(file)
    typer.echo(f"{count} file(s), {size} bytes, {'would be deleted' if dry_run else 'deleted'}")


def main() -> None:
    """``archive`` as a program of its own (``python -c 'from streamlearn.cli_archive
    import main; main()' run ...``), with the main command line's error handling."""
    from streamlearn.orphan_watch import stop_when_orphaned

    stop_when_orphaned()
    try:
        archive_app()
    except StreamlearnError as exc:
        typer.echo(f"streamlearn: error: {exc}", err=True)
        sys.exit(1)
