"""Least-privilege Kafka ACLs, derived from what each part of streamlearn reads and writes.

Pure: a :class:`PartAccess` says what one part (an agent, the collector, a prediction
worker, ...) touches, in topology names and unnamespaced group names;
:func:`acls_for` turns it into ACL entries for the part's principal in a namespace. The
parts streamlearn ships are described in :mod:`streamlearn.topology.acl_parts` (from the
agents' step declarations and the services' topic lists); applying the entries to a
cluster is :mod:`streamlearn.topology.acl_admin`'s job.

What each kind of access becomes (Kafka's operations; ``DESCRIBE`` is implied by ``READ``
and ``WRITE`` but spelled out, as Kafka's own tooling lists it):

- a topic read: ``READ`` and ``DESCRIBE`` on the topic (literal);
- a topic written: ``WRITE`` and ``DESCRIBE`` (idempotent producers need nothing more:
  since Kafka 2.8 ``WRITE`` on any topic implies the cluster's ``IDEMPOTENT_WRITE``);
- a topic only observed (end offsets): ``DESCRIBE``;
- a topic the part creates when missing (the registry's ``_schemas``): ``CREATE``,
  ``DESCRIBE_CONFIGS``;
- a consumer group: ``READ`` on the group (literal), or on a prefix for the groups a part
  names afresh each run (``streamlearn-dashboard-<random>``); both in the namespace, like
  the topics, so that two deployments sharing a cluster cannot reach each other's groups;
- a Faust worker's group ``G``: ``READ`` on the group and, on the topics prefixed ``G-``
  (its stores' changelogs ``G-<store>-changelog`` and Faust's ``G-__assignor-__leader``),
  everything its runtime does with them: create, describe configs, read and write;
- an operator part managing the declared topics (``topics apply``): ``CREATE``,
  ``DESCRIBE``, ``DESCRIBE_CONFIGS``, ``ALTER_CONFIGS`` and ``ALTER`` (partitions) on
  each.

No part uses transactions (processing is at-least-once made exact by idempotency, see
docs/design.md), so no part gets a ``TRANSACTIONAL_ID`` entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from streamlearn.topology.exceptions import TopologyError
from streamlearn.topology.model import Topology
from streamlearn.topology.namespace import Namespace

TOPIC, GROUP = "TOPIC", "GROUP"
LITERAL, PREFIXED = "LITERAL", "PREFIXED"
ALLOW = "ALLOW"
DEFAULT_PRINCIPAL_PREFIX = "User:streamlearn-"
"""Principal of part ``P`` by default: ``User:streamlearn-P`` (a SASL user of that name)."""

# ALTER_CONFIGS: an agent keeps its changelogs' segment settings (runtime/faust_step.py).
_INTERNAL_TOPIC_OPERATIONS = (
    "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "READ", "WRITE",
)  # fmt: skip
_MANAGED_TOPIC_OPERATIONS = ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "ALTER")


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW entry, as ``kafka-acls`` and AdminClient's ``AclBinding`` spell it."""

    principal: str
    resource_type: str
    name: str
    pattern_type: str
    operation: str
    permission: str = ALLOW
    host: str = "*"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class PartAccess:
    """What one part touches: topology topic names, group names before the namespace."""

    part: str
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    describes: tuple[str, ...] = ()
    """Topics whose metadata and offsets it reads without reading records."""
    creates: tuple[str, ...] = ()
    """Declared topics it creates when they are missing."""
    manages: tuple[str, ...] = ()
    """Declared topics it creates, reconfigures and grows (``topics apply``)."""
    groups: tuple[str, ...] = ()
    """Consumer groups (namespaced like the topics)."""
    faust_groups: tuple[str, ...] = ()
    """Faust app ids (namespaced): the group and its ``<group>-`` internal topics."""
    group_prefixes: tuple[str, ...] = ()
    """Prefixes (namespaced) of groups named afresh each run (assigned, never committed)."""


def principals(
    parts: Iterable[str],
    prefix: str = DEFAULT_PRINCIPAL_PREFIX,
    overrides: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Part → principal: ``overrides[part]`` or ``prefix + part``; every principal is
    ``Type:name`` (``User:...``), and an override must name a known part."""
    names, overrides = list(parts), overrides or {}
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise TopologyError(f"principal given for unknown parts {unknown}; parts: {names}")
    chosen = {part: overrides.get(part, prefix + part) for part in names}
    for part, principal in chosen.items():
        kind, _, name = principal.partition(":")
        if (not kind or not name) and part not in overrides:
            raise TopologyError(
                f"--principal-prefix {prefix!r} makes principals such as {principal!r}, not of "
                f"the form Type:name: give the type too (e.g. User:{prefix})"
            )
        if not kind or not name:
            raise TopologyError(
                f"principal {principal!r} of part {part} is not of the form Type:name "
                "(e.g. User:streamlearn-collector)"
            )
    return chosen


def _topic(namespace: Namespace, topology: Topology, logical: str, part: str) -> str:
    try:
        topology.topic(logical)
    except KeyError:
        raise TopologyError(f"part {part} uses topic {logical!r}, not in the topology") from None
    return namespace.topic(logical)


def acls_for(
    access: PartAccess, principal: str, topology: Topology, namespace: Namespace
) -> list[Acl]:
    """The ACL entries ``principal`` needs to run part ``access`` (sorted, no duplicates)."""
    entries: set[Acl] = set()

    def allow(kind: str, name: str, pattern: str, *operations: str) -> None:
        entries.update(Acl(principal, kind, name, pattern, op) for op in operations)

    def topics(names: Iterable[str]) -> list[str]:
        return [_topic(namespace, topology, name, access.part) for name in names]

    for name in topics(access.reads):
        allow(TOPIC, name, LITERAL, "READ", "DESCRIBE")
    for name in topics(access.writes):
        allow(TOPIC, name, LITERAL, "WRITE", "DESCRIBE")
    for name in topics(access.describes):
        allow(TOPIC, name, LITERAL, "DESCRIBE")
    for name in topics(access.creates):
        allow(TOPIC, name, LITERAL, "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")
    for name in topics(access.manages):
        allow(TOPIC, name, LITERAL, *_MANAGED_TOPIC_OPERATIONS)
    for group in access.groups:
        allow(GROUP, namespace.group(group), LITERAL, "READ")
    for group in access.faust_groups:
        app_id = namespace.group(group)
        allow(GROUP, app_id, LITERAL, "READ")
        allow(TOPIC, f"{app_id}-", PREFIXED, *_INTERNAL_TOPIC_OPERATIONS)
    for prefix in access.group_prefixes:
        allow(GROUP, namespace.group(prefix), PREFIXED, "READ")
    return sorted(entries)


def plan_acls(
    parts: Iterable[PartAccess],
    topology: Topology,
    namespace: Namespace,
    principal_of: Mapping[str, str],
) -> list[Acl]:
    """Every part's entries, by principal (``principal_of``: part → principal)."""
    entries: set[Acl] = set()
    for access in parts:
        entries.update(acls_for(access, principal_of[access.part], topology, namespace))
    return sorted(entries)


COLUMNS = ("principal", "resource_type", "name", "pattern_type", "operation", "permission")


def describe_table(entries: Iterable[Acl]) -> str:
    """The entries as an aligned text table (one line each, a header first)."""
    rows = [COLUMNS, *(tuple(getattr(acl, c) for c in COLUMNS) for acl in entries)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def describe_json(entries: Iterable[Acl]) -> str:
    return json.dumps([acl.as_dict() for acl in entries], indent=2)
