"""A worker whose topics grew partitions under it stops, so that it starts on the new counts.

A worker reads each topic's partition count once, as it binds its steps: its writers place
each key by that count, and its stores are sized by its inputs' (docs/topics.md, "Growing
partitions of a running deployment"). `streamlearn topics apply` grows a live topic at
once; a worker not restarted after it went on with the old counts without a word, placing
keys unlike the restarted ones and unlike the producers that see the new count, so a key's
records ended up in two partitions. So a worker looks at its topics' counts every
:data:`PARTITION_CHECK_S`, off the event loop (the admin client's calls block), and when one
has more partitions than it started with, it logs which, from what to what, and stops the
way SIGTERM stops it (batches done, offsets committed, producers flushed), to exit with
:data:`PARTITIONS_GREW_EXIT`: its supervisor (`up`, Kubernetes) starts it again, on the
new counts.

Looking is advice, never a reason to stop by itself: a cluster that cannot be asked, or a
topic it cannot see now, is not a growth.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

if TYPE_CHECKING:
    import faust

logger = logging.getLogger(__name__)

PARTITION_CHECK_S = 15.0
"""How often a worker compares its topics' partition counts with those it started with."""
PARTITIONS_GREW_EXIT = 75
"""The exit status of a worker stopped because a topic of its grew (EX_TEMPFAIL: run it
again). Its supervisor restarts it as after any exit it did not ask for."""
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Growth:
    """A topic of the worker's (Kafka name) with more partitions than it started with."""

    topic: str
    kind: str
    """What the worker does with it: ``reads`` or ``writes``."""
    started: int
    now: int

    def __str__(self) -> str:
        return (
            f"topic {self.topic}, which this worker {self.kind}, has {self.now} partitions; "
            f"it started with {self.started}"
        )


def grown_topics(
    started: Mapping[str, int], now: Mapping[str, int], inputs: frozenset[str]
) -> list[Growth]:
    """The topics of ``started`` (Kafka name → count) with more partitions ``now``; a
    topic ``now`` does not list is not counted (not seen is not grown)."""
    return [
        Growth(topic, "reads" if topic in inputs else "writes", count, now[topic])
        for topic, count in sorted(started.items())
        if now.get(topic, count) > count
    ]


def stop_message(growths: list[Growth]) -> str:
    """The worker's last word: what grew, and why it stops."""
    return (
        f"{'; '.join(str(growth) for growth in growths)}: stopping (exit code "
        f"{PARTITIONS_GREW_EXIT}) to restart on the new count, since a worker places the "
        "keys it writes and sizes its stores by the counts it started with; every agent "
        "worker of the deployment must restart after partitions grow (its supervisor, "
        "`streamlearn up` or Kubernetes, starts it again)"
    )


class PartitionGrowthWatch:
    """Compares the partition counts of a worker's topics with those it started with."""

    def __init__(
        self, settings: Settings, started: Mapping[str, int], inputs: frozenset[str]
    ) -> None:
        self.settings = settings
        self.started = dict(started)
        self.inputs = inputs
        self.grown: list[Growth] = []
        """What made the worker stop (empty while nothing grew)."""
        self._admin: AdminClient | None = None

    def counts(self) -> dict[str, int]:
        """The partition count of each of the worker's topics Kafka lists now (none when
        Kafka cannot be asked)."""
        if self._admin is None:
            self._admin = AdminClient(confluent_config(self.settings))
        try:
            metadata = self._admin.list_topics(timeout=TIMEOUT_S)
        except KafkaException as exc:
            logger.debug("could not list topics to compare partition counts: %s", exc)
            return {}
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if name in self.started and topic.error is None and topic.partitions
        }

    def check(self) -> list[Growth]:
        """The grown topics now (remembered in :attr:`grown`)."""
        grown = grown_topics(self.started, self.counts(), self.inputs)
        if grown and not self.grown:
            self.grown = grown
        return grown


def stop_self() -> None:
    """SIGTERM to this process: the worker's clean stop, as a supervisor's would be."""
    os.kill(os.getpid(), signal.SIGTERM)


def stop_when_partitions_grow(
    app: faust.App,
    watch: PartitionGrowthWatch,
    stop: Callable[[], None] = stop_self,
    interval_s: float = PARTITION_CHECK_S,
) -> None:
    """Check ``watch`` every ``interval_s`` while ``app`` runs, off the event loop; on a
    growth, log it as an error and ``stop`` the worker (once)."""

    async def check() -> None:
        if watch.grown:
            return  # stopping already
        grown = await asyncio.get_running_loop().run_in_executor(None, watch.check)
        if grown:
            logger.error("%s", stop_message(grown))
            stop()

    app.timer(interval_s)(check)
