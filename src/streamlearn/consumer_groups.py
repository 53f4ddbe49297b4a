"""The client ids of a consumer group's live members, as Kafka describes them.

Workers name what they do in their Kafka client id (an archiver its root, an agent worker
its agents and output settings), and compare the group's members with their own: the
workers of a group share its partitions, so one doing other work splits the outputs
without a word (:mod:`streamlearn.archive.group_roots`,
:mod:`streamlearn.runtime.group_settings`).
"""

from __future__ import annotations

from confluent_kafka.admin import AdminClient

DESCRIBE_TIMEOUT_S = 10.0


def member_client_ids(
    admin: AdminClient, group: str, timeout_s: float = DESCRIBE_TIMEOUT_S
) -> list[str]:
    """The client id of each member of ``group`` now (none for a group without members);
    raises ``KafkaException`` or ``TimeoutError`` when Kafka cannot describe it."""
    future = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group]
    return [member.client_id for member in future.result(timeout=timeout_s).members]
