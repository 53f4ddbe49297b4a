"""Read and create a cluster's ACLs with confluent-kafka's AdminClient.

Applying is additive and idempotent: the cluster's ALLOW entries are read first and only
the planned entries missing from them are created; nothing is deleted (an entry another
application or an operator made stays). A cluster without an authorizer answers ACL
requests with ``SECURITY_DISABLED`` (librdkafka's DescribeAcls answers it with an empty list:
a broker whose ``authorizer.class.name`` is empty is asked then): that becomes
:class:`AclApplyError` saying so.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from enum import Enum

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from streamlearn.exceptions import StreamlearnError
from streamlearn.topology.acls import Acl

REQUEST_TIMEOUT_S = 30.0
_CLUSTER_REFUSALS = (KafkaError.SECURITY_DISABLED, KafkaError.CLUSTER_AUTHORIZATION_FAILED)


class AclApplyError(StreamlearnError):
    """The cluster refused to list or create ACLs."""


def _explain(error: KafkaError, action: str) -> AclApplyError:
    if error.code() == KafkaError.SECURITY_DISABLED:
        return AclApplyError(
            f"{action}: the cluster has no authorizer (set authorizer.class.name, e.g. "
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer; the embedded broker: "
            "`streamlearn kafka start --secure --acls`)"
        )
    if error.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED:
        return AclApplyError(
            f"{action}: this principal may not manage ACLs (it needs ALTER and DESCRIBE on "
            "the cluster: run as a super user or the cluster's operator)"
        )
    return AclApplyError(f"{action}: {error.str()}")


def binding(acl: Acl) -> AclBinding:
    """``acl`` as AdminClient's :class:`AclBinding`."""
    return AclBinding(
        ResourceType[acl.resource_type],
        acl.name,
        ResourcePatternType[acl.pattern_type],
        acl.principal,
        acl.host,
        AclOperation[acl.operation],
        AclPermissionType[acl.permission],
    )


def _enum_name(value: Enum | str | int) -> str:
    # AclBinding keeps the enums it was made with; its annotations also allow str/int.
    return value.name if isinstance(value, Enum) else str(value)


def _from_binding(found: AclBinding) -> Acl:
    return Acl(
        principal=found.principal,
        resource_type=_enum_name(found.restype),
        name=found.name,
        pattern_type=_enum_name(found.resource_pattern_type),
        operation=_enum_name(found.operation),
        permission=_enum_name(found.permission_type),
        host=found.host,
    )


def existing_acls(admin: AdminClient) -> set[Acl]:
    """Every ACL entry of the cluster."""
    # None matches any name, principal and host (the stubs annotate them as str only).
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]
        ResourcePatternType.ANY,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        found = admin.describe_acls(everything, request_timeout=REQUEST_TIMEOUT_S).result(
            timeout=REQUEST_TIMEOUT_S
        )
    except KafkaException as exc:
        raise _explain(exc.args[0], "listing ACLs") from None
    if not found and not _may_describe_cluster(admin):
        # librdkafka answers a refused DescribeAcls with an empty list, not an error:
        # "no ACLs yet" and "not allowed to see them" look alike until the cluster says
        # what this principal may do.
        raise _explain(KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED), "listing ACLs")
    if not found and _without_authorizer(admin):
        # Likewise "no ACLs yet" and "no authorizer": without this a dry run said "would
        # add" what the real apply could not.
        raise _explain(KafkaError(KafkaError.SECURITY_DISABLED), "listing ACLs")
    return {_from_binding(item) for item in found}


def _without_authorizer(admin: AdminClient) -> bool:
    """Whether a broker says its ``authorizer.class.name`` is empty (False when it cannot
    be asked: a principal without DESCRIBE_CONFIGS learns it from creating ACLs)."""
    try:
        broker = min(admin.list_topics(timeout=REQUEST_TIMEOUT_S).brokers)
        resource = ConfigResource(ResourceType.BROKER, str(broker))
        configs = admin.describe_configs([resource], request_timeout=REQUEST_TIMEOUT_S)
        entry = configs[resource].result(timeout=REQUEST_TIMEOUT_S).get("authorizer.class.name")
    except (KafkaException, ValueError):
        return False
    return entry is not None and not entry.value


def _may_describe_cluster(admin: AdminClient) -> bool:
    cluster = admin.describe_cluster(
        include_authorized_operations=True, request_timeout=REQUEST_TIMEOUT_S
    ).result(timeout=REQUEST_TIMEOUT_S)
    return AclOperation.DESCRIBE in (cluster.authorized_operations or ())


def missing_acls(admin: AdminClient, desired: Iterable[Acl]) -> list[Acl]:
    """The planned entries the cluster does not have yet (sorted)."""
    present = existing_acls(admin)
    return sorted(set(desired) - present)


def unplanned_acls(
    admin: AdminClient, planned: Iterable[Acl], principals: Iterable[str]
) -> list[Acl]:
    """The cluster's entries for ``principals`` that ``planned`` does not hold (sorted): an
    older plan's (applying never deletes), one granted by hand, or another deployment's
    plan applied to the same principals."""
    chosen = set(principals)
    return sorted(acl for acl in existing_acls(admin) - set(planned) if acl.principal in chosen)


def create_acls(admin: AdminClient, entries: Sequence[Acl]) -> None:
    """Create ``entries`` (raises :class:`AclApplyError` naming each refused one)."""
    if not entries:
        return
    futures = admin.create_acls(
        [binding(acl) for acl in entries], request_timeout=REQUEST_TIMEOUT_S
    )
    failures = []
    for made, future in futures.items():
        try:
            future.result(timeout=REQUEST_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in (
                KafkaError.SECURITY_DISABLED,
                KafkaError.CLUSTER_AUTHORIZATION_FAILED,
            ):
                raise _explain(error, "creating ACLs") from None
            failures.append(f"{_from_binding(made)}: {error.str()}")
    if failures:
        raise AclApplyError("creating ACLs failed: " + "; ".join(failures))


def apply_acls(admin: AdminClient, desired: Iterable[Acl], *, dry_run: bool = False) -> list[Acl]:
    """Create the planned entries the cluster lacks; returns them (with ``dry_run``: what
    would be created)."""
    missing = missing_acls(admin, desired)
    if not dry_run:
        create_acls(admin, missing)
        wait_visible(admin, missing)
    return missing


def wait_visible(admin: AdminClient, entries: Sequence[Acl], timeout_s: float = 30.0) -> None:
    """Return once the cluster lists every entry of ``entries``: the controller accepts
    them before the brokers' metadata has them, so without this the parts started next
    (or an ``apply --dry-run`` at once) may find them missing."""
    deadline = time.monotonic() + timeout_s
    wanted = set(entries)
    while wanted:
        wanted -= existing_acls(admin)
        if not wanted:
            return
        if time.monotonic() >= deadline:
            raise AclApplyError(
                f"{len(wanted)} ACL(s) created but not listed by the cluster after "
                f"{timeout_s:.0f} s (e.g. {min(wanted)})"
            )
        time.sleep(0.2)
