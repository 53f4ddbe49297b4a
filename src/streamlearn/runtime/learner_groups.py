"""One learner group per ``training.examples``: a second one is refused at start.

A consumer group reads every record of its topics, so two groups running the learner on one
``training.examples`` both learn every model and both publish it, each its own version N
(and N+1, ...) to ``model.state``: prediction workers keep the one they read first and
refuse the other as ``conflicting_version``, after the fact, for good. Kafka fences workers
within a group, not groups. So a worker that runs the learner looks for another group whose
live members run the learner on its ``training.examples`` and refuses to start, naming it;
while it runs it looks again every :data:`~streamlearn.runtime.group_settings.GROUP_CHECK_S`
and logs an error for each new such group (two started together each looked before the
other joined).

A member runs the learner when its client id names the fingerprint of a set of agents with
the learner and this worker's output settings (:mod:`streamlearn.runtime.group_settings`),
and it is assigned partitions of the same Kafka topic: a monitor's group reads
``training.examples`` too but runs no learner, and a replay's learner reads its shadow
namespace's topic. A learner of other output settings (other ``models``) is not recognised.

Looking is advice, never a reason to stop by itself: a cluster that cannot be asked (or a
user that may describe only its own group, as ``streamlearn acls`` grants, where another
group is refused by the broker anyway) finds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from itertools import combinations
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConsumerGroupDescription

from streamlearn.kafka_clients import confluent_config
from streamlearn.runtime.group_settings import (
    check_while_running,
    fingerprint_of,
    settings_fingerprint,
)
from streamlearn.settings import Settings
from streamlearn.topology.namespace import Namespace

if TYPE_CHECKING:
    import faust

logger = logging.getLogger(__name__)

LEARNER = "learner"
EXAMPLES = "training.examples"
TIMEOUT_S = 10.0


def learner_fingerprints(settings: Settings, agents: Iterable[str]) -> set[str]:
    """The fingerprint of every set of ``agents`` with the learner, under ``settings``."""
    others = sorted(set(agents) - {LEARNER})
    return {
        settings_fingerprint(settings, [LEARNER, *chosen])
        for size in range(len(others) + 1)
        for chosen in combinations(others, size)
    }


def runs_the_learner(
    description: ConsumerGroupDescription, fingerprints: set[str], examples: str
) -> bool:
    """Whether a member of the described group runs the learner on topic ``examples``."""
    return any(
        fingerprint_of(member.client_id) in fingerprints
        and any(tp.topic == examples for tp in member.assignment.topic_partitions)
        for member in description.members
    )


class LearnerGroupsWatch:
    """Looks for other groups running the learner on this worker's ``training.examples``."""

    def __init__(self, settings: Settings, group_id: str) -> None:
        from streamlearn.agents import AGENT_NAMES

        self.settings = settings
        self.group_id = group_id
        # Whichever agents the other group's workers run beside the learner.
        self.fingerprints = learner_fingerprints(settings, AGENT_NAMES)
        self.examples = Namespace(settings.topic_prefix).topic(EXAMPLES)
        self._said: list[str] = []
        self._admin: AdminClient | None = None

    def _candidates(self, admin: AdminClient) -> list[str]:
        listed = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result(timeout=TIMEOUT_S)
        # The namespace's agents name their groups in it (a prefix "" lists every group).
        return sorted(
            g.group_id for g in listed.valid
            if g.group_id != self.group_id and g.group_id.startswith(self.settings.topic_prefix)
        )  # fmt: skip

    def _runs_the_learner(self, admin: AdminClient, groups: list[str]) -> list[str]:
        described = admin.describe_consumer_groups(groups, request_timeout=TIMEOUT_S)
        found = []
        for group, future in described.items():
            try:
                description = future.result(timeout=TIMEOUT_S)
            except (KafkaException, TimeoutError):
                continue  # gone meanwhile, or not ours to describe
            if runs_the_learner(description, self.fingerprints, self.examples):
                found.append(group)
        return sorted(found)

    def others(self) -> list[str]:
        """The other groups running the learner on the same topic now (none when Kafka
        cannot say)."""
        if self._admin is None:
            self._admin = AdminClient(confluent_config(self.settings))
        try:
            candidates = self._candidates(self._admin)
            return self._runs_the_learner(self._admin, candidates) if candidates else []
        except (KafkaException, TimeoutError) as exc:
            logger.debug("could not list consumer groups to look for other learners: %s", exc)
            return []

    def problem(self, others: list[str]) -> str:
        """What is wrong with ``others`` running beside this worker's group, and the fix."""
        return (
            f"group {', '.join(others)} runs the learner on {self.examples} too, beside "
            f"group {self.group_id}: two groups each read every example and publish every "
            "model, each its own versions, and prediction workers refuse one of them as "
            f"conflicting_version. Stop that group, or run more learner workers in it "
            f"(--group {others[0].removeprefix(self.settings.topic_prefix)})"
        )

    def check(self) -> list[str]:
        """The other learner groups now, logged as an error when new."""
        others = self.others()
        if others and others != self._said:
            logger.error("%s", self.problem(others))
        self._said = others
        return others


def second_learner_group(app: faust.App, settings: Settings) -> str | None:
    """What is wrong when another group runs the learner on this worker's topic now (the
    worker must not start); else None, and the groups are looked at again every
    :data:`~streamlearn.runtime.group_settings.GROUP_CHECK_S` while ``app`` runs."""
    watch = LearnerGroupsWatch(settings, app.conf.id)
    others = watch.others()
    if others:
        return watch.problem(others)
    check_while_running(app, watch.check)
    return None
