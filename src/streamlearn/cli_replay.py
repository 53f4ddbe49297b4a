"""``streamlearn replay ...``: rebuild and verify models from the log, reset groups."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from streamlearn.cli_archive import EndpointOption, RegionOption, RootOption
from streamlearn.cli_common import BootstrapOption, command_settings, fail
from streamlearn.cli_errors import one_line_error
from streamlearn.settings import Settings

if TYPE_CHECKING:
    from streamlearn.archive.decode import WriterSchemaSource
    from streamlearn.replay.sources import RecordSource

replay_app = typer.Typer(
    rich_markup_mode=None,
    help=(
        "Rebuild and verify models from the log; replay agents into shadow namespaces "
        "(and drop them); reset consumer groups."
    ),
    no_args_is_help=True,
)

FromOption = Annotated[
    str,
    typer.Option("--from", help="earliest | an ISO 8601 time | P:O,P:O offsets"),
]
ToOption = Annotated[
    str,
    typer.Option("--to", help="latest | an ISO 8601 time | P:O,P:O offsets (exclusive)"),
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan and stop")]


class Source(StrEnum):
    kafka = "kafka"
    archive = "archive"


SourceOption = Annotated[
    Source,
    typer.Option(
        "--source",
        help="kafka, or archive: the archive's files (`archive run`), then Kafka after them",
    ),
]


def _record_source(
    settings: Settings,
    registry: WriterSchemaSource,
    source: Source,
    root: str | None,
    s3_endpoint_url: str | None,
    s3_region: str | None,
) -> RecordSource:
    from streamlearn.archive.config import default_root
    from streamlearn.cli_archive import storage_options
    from streamlearn.replay.sources import ArchiveSource, KafkaSource

    if source is Source.kafka:
        if root is not None:
            fail("--root is the archive's: use it with --source archive")
        return KafkaSource(settings)
    chosen = root or default_root(settings)
    options = storage_options(chosen, s3_endpoint_url, s3_region)
    return ArchiveSource(settings, registry, chosen, options)


SHOWN_GROUPS = 12
"""Groups a refused `replay reset` lists (a shared cluster may have hundreds)."""


def _replay_settings(bootstrap_servers: str | None) -> tuple[Settings, str]:
    """The command's settings, signing with the data directory's key (``up``'s, or its
    last rotation) when none is set, and where the key came from; refused without one
    (the hint names the data directory too, where `up` keeps its key)."""
    from streamlearn.up.signing_key import key_source, missing_key_hint, with_local_key

    given = command_settings(kafka_bootstrap=bootstrap_servers)
    source = key_source(given)
    if source is None:
        fail(f"snapshots are verified and signed with a key: {missing_key_hint(given)}")
    return with_local_key(given), source


@replay_app.command("model")
def replay_model(
    name: Annotated[
        str, typer.Argument(help="The model whose examples are replayed: <spec> or <spec>@<arm>")
    ],
    start: FromOption = "earliest",
    end: ToOption = "latest",
    spec: Annotated[
        str | None, typer.Option("--spec", help="Train this spec [default: NAME's]")
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Publish as the model's next version")
    ] = False,
    shadow: Annotated[
        str | None,
        typer.Option("--shadow", help="Publish as <spec>@SHADOW (an experiment arm can serve it)"),
    ] = None,
    source: SourceOption = Source.kafka,
    root: RootOption = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Publish although a learner is consuming examples (--publish), or although "
            "the served model's spec text differs from this one's (workers would refuse it)",
        ),
    ] = False,
    dry_run: DryRunOption = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Train a model on a range of training.examples with the learner's code."""
    if publish and shadow is not None:
        fail("--publish and --shadow: choose one")
    # Settings and key before the learner's code loads (River, SciPy: seconds).
    settings, _ = _replay_settings(bootstrap_servers)
    from streamlearn.replay.model import (
        nothing_learned,
        plan_model_replay,
        records_read,
        run_model_replay,
    )
    from streamlearn.replay.positions import parse_position
    from streamlearn.replay.progress import progress
    from streamlearn.serde import RegistryClient

    with RegistryClient.for_settings(settings) as registry:
        plan = plan_model_replay(
            settings,
            registry,
            name,
            start=parse_position(start),
            end=parse_position(end),
            spec=spec,
            shadow=shadow,
            publish=publish,
            force=force,
            source=_record_source(settings, registry, source, root, s3_endpoint_url, s3_region),
        )
        for line in plan.lines():
            typer.echo(line)
        if dry_run:
            return
        with progress(f"replay {name}", plan.records) as advance:
            result = run_model_replay(settings, registry, plan, advance)
    snapshot = result.snapshot
    unlearned = nothing_learned(plan, result.counts, result.learned)
    if unlearned is not None:
        typer.echo(f"warning: {unlearned}", err=True)
    typer.echo(
        f"learned {result.learned:,} examples "
        f"({records_read(result.counts, result.learner_counts)}); payload sha256 "
        f"{snapshot['payload_sha256'][:12]}"
    )
    if result.first_failure is not None:
        failed = result.learner_counts.model_error
        typer.echo(
            f"warning: the model failed on {failed:,} example{'s' if failed > 1 else ''}, "
            f"not learned; the first at {result.first_failure}",
            err=True,
        )
    if result.published_at is not None:
        partition, offset = result.published_at
        typer.echo(
            f"published {snapshot['model_name']} v{snapshot['version']} to model.state "
            f"[{partition}] at offset {offset}"
        )


@replay_app.command("verify")
def replay_verify(
    name: Annotated[str, typer.Argument(help="The model name on model.state")],
    version: Annotated[
        int | None, typer.Option("--version", help="This version [default: the newest]")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every version model.state still holds")
    ] = False,
    source: SourceOption = Source.kafka,
    root: RootOption = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Recompute published snapshots from the offsets they record; exit 1 on a difference."""
    if every and version is not None:
        fail("--version and --all: choose one")
    # Settings and key before the learner's code loads (River, SciPy: seconds).
    settings, key_from = _replay_settings(bootstrap_servers)
    from streamlearn.replay.verify import verify_published
    from streamlearn.serde import RegistryClient

    with RegistryClient.for_settings(settings) as registry:
        reader = _record_source(settings, registry, source, root, s3_endpoint_url, s3_region)
        verification = verify_published(settings, registry, name, version, every, reader)
    verdicts = verification.verdicts
    for verdict in verdicts:
        state = "identical" if verdict.identical else "DIFFERS"
        typer.echo(
            f"{verdict.model_name} v{verdict.version}: {state}; from {verdict.start}, "
            f"examples {verdict.examples_read} ({verdict.examples:,} learned): {verdict.detail}"
        )
    differing = [v for v in verdicts if not v.identical]
    if differing:
        first = differing[0]
        typer.echo(
            f"{len(differing)} of {len(verdicts)} versions differ; first: v{first.version}: "
            f"{first.detail}",
            err=True,
        )
        if any("bad_signature" in v.detail for v in differing):
            # Every version of another run's key fails so, as tampered ones do.
            typer.echo(
                f"signatures were checked with the key from {key_from}: if another key "
                "signed these snapshots (`up` run with another STREAMLEARN_DATA_DIR, say), "
                "give that one",
                err=True,
            )
        raise typer.Exit(1)
    if verification.unusable:
        # Not a version's difference, and no version is what it should be while these are
        # there: a record that is no snapshot, or the model's key deleted after them.
        problems = "; ".join(verification.unusable)
        typer.echo(
            f"{len(verdicts)} version(s) identical, but model.state holds {problems}",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"{len(verdicts)} version(s) verified: each is exactly what its inputs produce")


@replay_app.command("reset")
def replay_reset(
    group: Annotated[
        str, typer.Option("--group", help="The consumer group (as given to `agents run --group`)")
    ],
    to: Annotated[
        str, typer.Option("--to", help="earliest | latest | an ISO 8601 time | P:O,P:O offsets")
    ],
    topics: Annotated[
        list[str] | None,
        typer.Option("--topic", help="Topology topic to move [default: every topic it committed]"),
    ] = None,
    dry_run: DryRunOption = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Move a stopped consumer group's committed offsets (refused while it has members)."""
    from streamlearn.replay.groups import (
        committed_offsets,
        group_ids,
        move_offsets,
        plan_moves,
        refuse_if_active,
    )
    from streamlearn.replay.positions import check_retention, parse_position, resolve
    from streamlearn.replay.sources import KafkaSource
    from streamlearn.topology.catalogue import TopicCatalogue

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    catalogue = TopicCatalogue.from_settings(settings)
    kafka_group = catalogue.namespace.group(group)
    known = group_ids(settings)
    if kafka_group not in known:
        # A misspelt group was taken as a new one, and offsets committed under the typo.
        ours = [g for g in known if g.startswith(settings.topic_prefix)] or known
        listed = ", ".join(ours[:SHOWN_GROUPS]) + (", ..." if len(ours) > SHOWN_GROUPS else "")
        fail(f"no consumer group {kafka_group!r} on this cluster (it has: "
             f"{listed or 'none'}); `agents run --group G` names them")  # fmt: skip
    refuse_if_active(settings, kafka_group)
    current = committed_offsets(settings, kafka_group)
    if topics:
        names = [catalogue.topic(topic).name for topic in topics]
    else:
        names = sorted({topic for topic, _ in current})
    if not names:
        fail(f"consumer group {kafka_group} has no committed offsets: name topics with --topic")
    position = parse_position(to)
    # Offsets (P:O) move the partitions they name; the others keep their commits, as with
    # Kafka's own reset tool.
    named = set(position) if isinstance(position, Mapping) else None
    targets = {}
    for name in names:
        ranges = [
            r for r in resolve(KafkaSource(settings), name, position)
            if named is None or r.partition in named
        ]  # fmt: skip
        # As a replay's range: offsets before the log's start are gone (a group sent
        # there reads from wherever its auto.offset.reset says, not from them).
        check_retention(name, ranges)
        targets.update({(name, r.partition): r.start for r in ranges})
    moves = plan_moves(current, targets)
    for move in moves:
        before = "-" if move.current is None else str(move.current)
        typer.echo(f"{kafka_group} {move.topic}[{move.partition}]: {before} -> {move.target}")
    if dry_run:
        return
    move_offsets(settings, kafka_group, moves)
    typer.echo(f"moved {len(moves)} partition offsets of {kafka_group}")


def _partly_made(into: str) -> str:
    """What a replay that did not finish left: said alike however it ended."""
    return (
        f"the shadow namespace {into!r} holds part of the replay (no manifest: `replay "
        f"diff` refuses it); delete it with `streamlearn replay drop --into {into} --force`"
    )


def _interrupted(into: str) -> NoReturn:
    typer.echo(f"streamlearn: interrupted: {_partly_made(into)}", err=True)
    raise typer.Exit(130)  # a shell's code for a command stopped by SIGINT


@replay_app.command("agents")
def replay_agents(
    only: Annotated[str, typer.Option("--only", help="Comma-separated agents to run")],
    into: Annotated[
        str, typer.Option("--into", help="Shadow namespace (topic and group prefix), e.g. try1.")
    ],
    start: FromOption = "earliest",
    end: ToOption = "latest",
    source: SourceOption = Source.kafka,
    root: RootOption = None,
    s3_endpoint_url: EndpointOption = None,
    s3_region: RegionOption = None,
    dry_run: DryRunOption = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Run agents over a range of their live input into shadow topics; live is untouched."""
    from streamlearn.replay.exceptions import ReplayError
    from streamlearn.replay.positions import parse_position
    from streamlearn.replay.progress import progress
    from streamlearn.replay.shadow import (
        copy_inputs,
        plan_shadow,
        run_shadow,
        worker_log_path,
        write_manifest,
    )
    from streamlearn.serde import RegistryClient

    agents = [a.strip() for a in only.split(",") if a.strip()]
    if "learner" in agents:
        # The learner signs: with up's key in the data directory when none is set, as
        # `replay model` does (the worker died for want of a key after the copy).
        settings, _ = _replay_settings(bootstrap_servers)
    else:
        settings = command_settings(kafka_bootstrap=bootstrap_servers)
    with RegistryClient.for_settings(settings) as registry:
        reader = _record_source(settings, registry, source, root, s3_endpoint_url, s3_region)
        plan = plan_shadow(
            settings, agents, into, parse_position(start), parse_position(end), reader
        )
        for line in plan.lines():
            typer.echo(line)
        if dry_run:
            return
        try:
            with progress(f"copy into {into}", plan.records) as advance:
                copy_inputs(settings, plan, advance)
        except KeyboardInterrupt:
            _interrupted(into)
        except Exception as exc:
            # A damaged archive file, a store or broker that stopped answering: records
            # copied before it are in the namespace, which no manifest marks as a replay.
            refusal = one_line_error(exc)
            if refusal is None:
                typer.echo(f"streamlearn: {_partly_made(into)}", err=True)
                raise
            fail(f"{refusal}. {_partly_made(into)}")
    log = worker_log_path(settings, into)
    typer.echo(f"running {', '.join(agents)} in {into!r} (worker log {log})")
    try:
        code = run_shadow(settings, plan, log)  # stops the worker however it ends
    except KeyboardInterrupt:
        _interrupted(into)
    except ReplayError as exc:
        # The worker ended early or stopped committing: the copy is there all the same.
        fail(f"{exc}. {_partly_made(into)}")
    if code != 0:
        fail(f"the shadow worker stopped with exit code {code}; see {log}. {_partly_made(into)}")
    path = write_manifest(settings, plan)
    typer.echo(f"done: every input committed; manifest {path}")
    typer.echo(f"compare with: streamlearn replay diff --into {into}")


@replay_app.command("diff")
def replay_diff(
    into: Annotated[str, typer.Option("--into", help="The shadow namespace replayed into")],
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Compare a shadow replay's outputs with live; exit 1 on a difference or gap.

    A topic is not compared (a gap) when the range is too short for the window it is
    compared in.
    """
    from streamlearn.replay.diff import diff_replay
    from streamlearn.replay.shadow import read_manifest
    from streamlearn.serde import RegistryClient

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    manifest = read_manifest(settings, into)
    with RegistryClient.for_settings(settings) as registry:
        results = diff_replay(settings, registry, manifest)
    for result in results:
        for line in result.lines():
            typer.echo(line)
    differing = [r.topic for r in results if r.differs]
    uncompared = [r.topic for r in results if r.not_compared is not None]
    if differing:
        typer.echo(f"differences in {', '.join(differing)}", err=True)
    if uncompared:
        typer.echo(f"not compared: {', '.join(uncompared)} (replay a longer range)", err=True)
    if differing or uncompared:
        raise typer.Exit(1)
    typer.echo("no differences")


@replay_app.command("drop")
def replay_drop(
    into: Annotated[str, typer.Option("--into", help="The shadow namespace to delete")],
    dry_run: DryRunOption = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also a namespace with no replay recorded (a replay's lost manifest)"
        ),
    ] = False,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Delete a shadow namespace: its topics, consumer group, manifest and worker log."""
    from streamlearn.replay.drop import drop_namespace, plan_drop_on_cluster

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    plan = plan_drop_on_cluster(settings, into, force)
    if plan.empty:
        fail(f"nothing of namespace {into!r} here: no topic, consumer group or manifest")
    for line in plan.lines():
        typer.echo(line)
    if dry_run:
        return
    drop_namespace(settings, plan)
    typer.echo(
        f"dropped {into!r}: {len(plan.topics)} topic(s), {len(plan.groups)} consumer "
        f"group(s), {len(plan.files)} file(s)"
    )
