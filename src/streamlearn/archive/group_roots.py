"""One archive root per consumer group.

The workers of a group share the topics' partitions. Two workers of one group archiving
different roots (an ``archive run --root s3://…`` started beside ``up``'s own archiver,
both in the default group ``streamlearn-archive``) would each take some of the partitions
and write them to its own root alone: each root gets part of the topics, without a word.
So a worker's Kafka client id names its root (a hash: a root's text may hold
credentials), and a worker refuses to join a group whose live members archive another root.

Members that name no root (workers of versions before this check) are not judged.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.consumer_groups import DESCRIBE_TIMEOUT_S, member_client_ids
from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

CLIENT_ID_PREFIX = "streamlearn-archive.root-"


def root_fingerprint(root: str, storage_options: Mapping[str, Any]) -> str:
    """12 hex digits naming an archive root: the same for every spelling of one local
    directory, and for one object-storage prefix at one endpoint."""
    if "://" in root and not root.startswith("file://"):
        where = f"{storage_options.get('endpoint_url') or ''}\n{root.rstrip('/')}"
    else:
        where = str(Path(root.removeprefix("file://")).resolve())
    return hashlib.sha256(where.encode()).hexdigest()[:12]


def archive_client_id(root: str, storage_options: Mapping[str, Any]) -> str:
    """The Kafka client id of a worker archiving ``root``."""
    return CLIENT_ID_PREFIX + root_fingerprint(root, storage_options)


def other_roots(member_client_ids: Iterable[str], own_client_id: str) -> list[str]:
    """The members' client ids that name another root than ``own_client_id``'s."""
    return sorted(
        {
            client_id
            for client_id in member_client_ids
            if client_id.startswith(CLIENT_ID_PREFIX) and client_id != own_client_id
        }
    )


def refuse_other_roots(settings: Settings, group: str, own_client_id: str) -> None:
    """Raise :class:`ArchiveError` when a live member of ``group`` archives another root.
    A group Kafka cannot describe now is let through (logged): the check guards a
    mistake, it does not make the archive depend on one more request."""
    try:
        members = member_client_ids(AdminClient(confluent_config(settings)), group)
    except (KafkaException, TimeoutError) as exc:
        # A future's timeout is a bare TimeoutError: the line ended at its colon.
        reason = (
            f"Kafka at {settings.kafka_bootstrap} did not answer within {DESCRIBE_TIMEOUT_S:g}s"
            if isinstance(exc, TimeoutError)
            else str(exc)
        )
        log.warning("archive: could not describe group %s to check its roots: %s", group, reason)
        return
    others = other_roots(members, own_client_id)
    if others:
        raise ArchiveError(
            f"consumer group {group} has a worker archiving another root (client id "
            f"{', '.join(others)}; this root is {own_client_id}): the workers of a group "
            "share the topics' partitions, so each root would get only some of them. Give "
            "this archiver its own group (--group, e.g. --group streamlearn-archive-s3)"
        )
