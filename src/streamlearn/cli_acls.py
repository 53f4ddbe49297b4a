"""``streamlearn acls plan|apply``: least-privilege Kafka ACLs, a principal per part."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streamlearn.cli_common import BootstrapOption, TopologyOption, command_settings, fail
from streamlearn.settings import Settings
from streamlearn.topology.acls import (
    DEFAULT_PRINCIPAL_PREFIX,
    Acl,
    describe_json,
    describe_table,
    plan_acls,
    principals,
)

acls_app = typer.Typer(
    rich_markup_mode=None,
    help="Least-privilege Kafka ACLs derived from the topology, a principal per part.",
    no_args_is_help=True,
)

PartOption = Annotated[
    list[str] | None,
    typer.Option(
        "--part",
        help="Only these parts (comma-separated or repeated): preprocess, sessionise, "
        "label-join, learner, "
        "monitor, collector, serve, registry, archive, dashboard, ops [default: all]",
    ),
]
PrefixOption = Annotated[
    str,
    typer.Option(
        "--principal-prefix", help="Principal of part P: PREFIX + P (e.g. User:streamlearn-P)"
    ),
]
PrincipalOption = Annotated[
    list[str] | None,
    typer.Option(
        "--principal",
        help="PART=PRINCIPAL for a part whose principal is not the prefix's (repeatable), "
        "e.g. serve=User:ml-serving",
    ),
]


def _overrides(pairs: list[str]) -> dict[str, str]:
    overrides = {}
    for pair in pairs:
        part, sep, principal = pair.partition("=")
        if not sep or not part or not principal:
            raise typer.BadParameter(f"{pair!r} is not PART=PRINCIPAL", param_hint="--principal")
        if part.strip() in overrides:
            raise typer.BadParameter(
                f"part {part.strip()!r} given twice: one principal per part",
                param_hint="--principal",
            )
        overrides[part.strip()] = principal.strip()
    return overrides


def _plan(
    settings: Settings,
    file: Path | None,
    parts: list[str] | None,
    prefix: str,
    principal_pairs: list[str] | None,
) -> list[Acl]:
    """The entries of the chosen parts (every part without ``parts``)."""
    return _plans(settings, file, parts, prefix, principal_pairs)[0]


def _plans(
    settings: Settings,
    file: Path | None,
    parts: list[str] | None,
    prefix: str,
    principal_pairs: list[str] | None,
) -> tuple[list[Acl], list[Acl], set[str]]:
    """The chosen parts' entries, every part's (a principal may be two parts'), and the
    chosen parts' principals."""
    from streamlearn.topology.acl_parts import shipped_parts
    from streamlearn.topology.catalogue import topology_path
    from streamlearn.topology.loader import load_topology
    from streamlearn.topology.namespace import Namespace

    topology = load_topology(file or topology_path(settings))
    shipped = shipped_parts(topology)
    if parts:
        parts = [name.strip() for given in parts for name in given.split(",") if name.strip()]
    names = [access.part for access in shipped]
    unknown = sorted(set(parts or ()) - set(names))
    if unknown:
        fail(f"unknown parts {unknown}; parts: {', '.join(names)}")
    chosen = [access for access in shipped if not parts or access.part in parts]
    principal_of = principals(names, prefix, _overrides(principal_pairs or []))
    namespace = Namespace(settings.topic_prefix)
    return (
        plan_acls(chosen, topology, namespace, principal_of),
        plan_acls(shipped, topology, namespace, principal_of),
        {principal_of[access.part] for access in chosen},
    )


@acls_app.command("plan")
def acls_plan(
    part: PartOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON list instead of a table")] = False,
    principal_prefix: PrefixOption = DEFAULT_PRINCIPAL_PREFIX,
    principal: PrincipalOption = None,
    file: TopologyOption = None,
) -> None:
    """Print the ACLs each part needs (no cluster is contacted)."""
    settings = command_settings()
    entries = _plan(settings, file, part, principal_prefix, principal)
    typer.echo(describe_json(entries) if as_json else describe_table(entries))


@acls_app.command("apply")
def acls_apply(
    part: PartOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what is missing")] = False,
    principal_prefix: PrefixOption = DEFAULT_PRINCIPAL_PREFIX,
    principal: PrincipalOption = None,
    file: TopologyOption = None,
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Create the planned ACLs the cluster lacks (idempotent; nothing is deleted)."""
    from confluent_kafka.admin import AdminClient

    from streamlearn.kafka_clients import confluent_config
    from streamlearn.topology.acl_admin import apply_acls, unplanned_acls

    settings = command_settings(kafka_bootstrap=bootstrap_servers)
    entries, everything, chosen = _plans(settings, file, part, principal_prefix, principal)
    admin = AdminClient(confluent_config(settings))
    added = apply_acls(admin, entries, dry_run=dry_run)
    if added:
        typer.echo(describe_table(added))
    verb = "would add" if dry_run else "added"
    typer.echo(f"{verb} {len(added)} of {len(entries)} ACL(s); {len(entries) - len(added)} present")
    # Applying never deletes: what an older plan granted stays, and with it its access.
    unplanned = unplanned_acls(admin, everything, chosen)
    if unplanned:
        typer.echo(
            f"{len(unplanned)} ACL(s) of these principals are not in the plan (an older "
            "plan's, one granted by hand, or another deployment's applied to the same "
            "principals: give each deployment its own --principal-prefix); nothing is "
            "deleted: remove those nothing needs (kafka-acls.sh --remove)"
        )
        typer.echo(describe_table(unplanned))
