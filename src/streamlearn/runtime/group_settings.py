"""The settings a worker's outputs depend on, compared with those of its group's members.

Every partition's outputs follow the settings of the worker that owns it: a worker with
another session gap beside the group's others makes other sessions in the partitions it
takes, with nothing wrong to see (a new-user pass: 21 sessions fewer, one changed, in the 3
partitions of 6 it took). Each worker therefore names a fingerprint of its agents and of
the settings that change their outputs in its Kafka client id, which the group's
description lists for every member; a worker joining a group with another fingerprint in it
says so, with its own settings, at start and whenever the group's other fingerprints change
(checked every 15 s): each worker's line names its own settings, so two such lines tell
which setting differs.

It warns, it does not refuse: a rolling change of a setting (the Helm chart rolls the
agents when the settings change) has both kinds of worker in the group until it ends, and a
refused new worker would stop that roll halfway for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.consumer_groups import member_client_ids
from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

if TYPE_CHECKING:  # `replay` reads OUTPUT_SETTINGS and needs no Faust
    import faust

logger = logging.getLogger(__name__)

OUTPUT_SETTINGS = (
    "dedup_window_s", "bot_rate_window_s", "bot_max_events_per_user", "bot_max_events_per_ip",
    "bot_min_interval_ms", "bot_burst_length", "max_clock_skew_s", "ip_policy",
    "geoip_database", "session_gap_s", "session_cut_s", "session_allowed_lateness_s",
    "session_late_policy", "label_horizon_s", "label_allowed_lateness_s", "models",
)  # fmt: skip
"""Settings that change what the agents output (a `replay agents` manifest records them)."""

CLIENT_ID_PREFIX = "streamlearn-agents-settings-"
GROUP_CHECK_S = 15.0
"""How often a worker compares its group's members with its settings again."""


def output_settings_text(settings: Settings, agents: Sequence[str]) -> str:
    """The agents and the settings their outputs depend on, as ``name=value`` pairs."""
    values = [f"{name}={getattr(settings, name)}" for name in OUTPUT_SETTINGS]
    return f"agents={','.join(sorted(agents))} " + " ".join(values)


def settings_fingerprint(settings: Settings, agents: Sequence[str]) -> str:
    """12 hex digits that differ when the agents or an output setting differ."""
    canonical = json.dumps(
        [sorted(agents), {name: str(getattr(settings, name)) for name in OUTPUT_SETTINGS}]
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def agent_client_id(fingerprint: str) -> str:
    """The Kafka client id of a worker whose settings have ``fingerprint``."""
    return CLIENT_ID_PREFIX + fingerprint


def fingerprint_of(client_id: str) -> str | None:
    """The fingerprint a member's client id names (None: not a streamlearn agent's, or
    one of a release before the fingerprint)."""
    if not client_id.startswith(CLIENT_ID_PREFIX):
        return None
    return client_id[len(CLIENT_ID_PREFIX) :]


def other_fingerprints(client_ids: Iterable[str], fingerprint: str) -> list[str]:
    """The fingerprints among members' ``client_ids`` that are not ``fingerprint``."""
    found = {fingerprint_of(client_id) for client_id in client_ids}
    return sorted(f for f in found if f is not None and f != fingerprint)


class GroupSettingsWatch:
    """Compares the members of ``group_id`` with this worker's agents and output settings,
    saying each new set of other fingerprints once (a check every
    :data:`GROUP_CHECK_S` repeats nothing while the group stays as it was)."""

    def __init__(self, settings: Settings, group_id: str, agents: Sequence[str]) -> None:
        self.settings = settings
        self.group_id = group_id
        self.agents = list(agents)
        self.fingerprint = settings_fingerprint(settings, agents)
        self._said: list[str] = []
        self._admin: AdminClient | None = None
        """One client for every check (a new one each time was a connection, and with
        SASL_SSL a handshake, every :data:`GROUP_CHECK_S`)."""

    def members(self) -> list[str]:
        """The client ids of the group's members now (none when the group cannot be
        described: checking is advice, never a reason to stop)."""
        if self._admin is None:
            self._admin = AdminClient(confluent_config(self.settings))
        try:
            return member_client_ids(self._admin, self.group_id)
        except (KafkaException, TimeoutError) as exc:
            logger.debug("could not describe group %s to compare settings: %s", self.group_id, exc)
            return []

    def check(self) -> list[str]:
        """The other fingerprints in the group now, warned about when new."""
        others = other_fingerprints(self.members(), self.fingerprint)
        if others and others != self._said:
            logger.warning(
                "members of group %s run other settings (fingerprint %s; this worker's is "
                "%s: %s): each partition's outputs follow its owner's settings, so the "
                "group's outputs are mixed until every worker runs the same ones (expected "
                "during a rolling change of a setting; otherwise compare this line with "
                "theirs)",
                self.group_id,
                ", ".join(others),
                self.fingerprint,
                output_settings_text(self.settings, self.agents),
            )
        self._said = others
        return others


def watch_group_settings(app: faust.App, watch: GroupSettingsWatch) -> None:
    """Check ``watch`` as the worker starts and every :data:`GROUP_CHECK_S` while ``app``
    runs: workers started together are not members yet when each starts, so a check at
    start alone missed them (both started with other settings, neither said a word). The
    first check is the worker's first task, off the event loop: made before the worker
    started, it held the start for the description's timeout (10 s) when no broker
    answered."""

    async def check_at_start() -> None:
        await asyncio.get_running_loop().run_in_executor(None, watch.check)

    app.task(check_at_start)
    check_while_running(app, watch.check)


def check_while_running(app: faust.App, check: Callable[[], object]) -> None:
    """Run ``check`` every :data:`GROUP_CHECK_S` while ``app`` runs, off the event loop
    (the admin client's calls block, as the broker probe's do)."""

    async def check_again() -> None:
        await asyncio.get_running_loop().run_in_executor(None, check)

    app.timer(GROUP_CHECK_S)(check_again)
