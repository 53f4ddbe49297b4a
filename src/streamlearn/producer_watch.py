"""Whether a producer has stopped getting through while Kafka answers other clients.

After a broker outage, a collector's librdkafka producer was once seen never to send
again (one outage in three, not reproduced since): every record timed out, the collector
answered 503 for twenty minutes and its ``/healthz`` said ok, while a new process reached
the same broker at once. A prediction worker's telemetry producer did the same, and every
prediction's record was lost. Nothing in the process noticed, so nothing restarted it.

:class:`ProducerWatch` notices. The producer tells it when it hands records over
(:meth:`~ProducerWatch.handed`) and when a broker says anything about one
(:meth:`~ProducerWatch.heard`: a confirmation, or an error the broker itself answered;
a record that timed out in the client is no word from a broker). When records have waited
``kafka_producer_stall_s`` with no word, :meth:`~ProducerWatch.check` asks the brokers for
metadata with a new client of its own; once they have answered it for
``kafka_producer_stall_s`` too while the producer still hears nothing, the producer is
stuck: :attr:`~ProducerWatch.stalled` says so, and the part's ``/healthz`` answers 503 with
it, so Kubernetes (or ``up``) restarts the process. Brokers that are away do not fail
liveness (a restart would not bring them back), and a producer that just got its brokers
back has the same time to reconnect. A fatal producer error (an idempotent producer that
lost its sequence) stalls it at once: librdkafka produces nothing more after one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.log_repeats import LIBRDKAFKA_LOG
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0
"""How often :meth:`ProducerWatch.run` checks (and, while records wait, asks the brokers),
or a quarter of ``kafka_producer_stall_s`` when that is shorter."""
ASK_TIMEOUT_S = 5.0


def brokers_unanswered(settings: Settings, topics: Collection[str]) -> str | None:
    """Why a new client with ``settings`` got no metadata from the brokers, or metadata
    without one of ``topics`` (the producer's: its records to a missing topic time out in
    the client, and a restart would not create it); None when they answered with them. A
    client of its own each time: the producer's may be what is stuck."""
    admin = AdminClient(confluent_config(settings))
    try:
        known = admin.list_topics(timeout=ASK_TIMEOUT_S).topics
        missing = sorted(topic for topic in topics if topic not in known)
        return f"the brokers have no topic {', '.join(missing)}" if missing else None
    except KafkaException as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.str() if isinstance(reason, KafkaError) else str(reason)
    finally:
        del admin  # its threads and connections end with it


FROM_METADATA = frozenset({KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION})
"""librdkafka's own errors that say what the brokers' metadata said: a topic (or its
partition) they do not have. A restart would not create it, so it is word from them."""


def from_a_broker(error: KafkaError | None) -> bool:
    """Whether a delivery report is word from a broker: a confirmation, or an error the
    broker answered (librdkafka's own errors, a time-out among them, are negative)."""
    return error is None or error.code() > 0 or error.code() in FROM_METADATA


class ProducerWatch:
    """One producer's stall, for its process's liveness (see the module's documentation)."""

    def __init__(
        self,
        settings: Settings,
        topics: Collection[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        ask: Callable[[], str | None] | None = None,
    ) -> None:
        """``topics``: those the producer writes to (Kafka's names)."""
        self.stall_s = settings.kafka_producer_stall_s
        self._clock = clock
        self._ask = ask if ask is not None else lambda: brokers_unanswered(settings, topics)
        self._unanswered: str | None = None
        self._waiting_since: float | None = None
        """Since when records have waited with no word from a broker (None: none wait)."""
        self._answered_since: float | None = None
        """Since when a new client has had the brokers' answer, while records waited."""
        self._fatal: str | None = None
        self.stalled: str | None = None
        """Why the producer is stuck (what ``/healthz`` says); None while it is not."""
        self.asked = 0
        """How many times the brokers were asked so far."""

    def handed(self) -> None:
        """Records were just handed to the producer."""
        if self._waiting_since is None:
            self._waiting_since = self._clock()

    def heard(self, waiting: bool) -> None:
        """A broker just confirmed a record or answered an error about one; ``waiting``:
        whether records are still waiting for theirs."""
        self._waiting_since = self._clock() if waiting else None
        self._answered_since = None
        if self.stalled is not None and self._fatal is None:
            log.warning("the Kafka producer gets through again")
            self.stalled = None

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's error callback: a fatal error stalls the producer for good. Others
        are logged, as librdkafka logs them without a callback ("1/1 brokers are down"),
        through its rate-limited logger."""
        if not error.fatal():
            LIBRDKAFKA_LOG.error("%s", error.str())
            return
        if self._fatal is None:
            self._fatal = (
                f"the Kafka producer hit a fatal error and sends nothing more: {error.str()}"
            )
            self._say(self._fatal)

    def waited_s(self) -> float:
        """How long records have waited with no word from a broker (0: none wait)."""
        since = self._waiting_since
        return 0.0 if since is None else self._clock() - since

    async def check(self) -> None:
        """Update :attr:`stalled`, asking the brokers (in a thread) while records wait."""
        if self._fatal is not None or self.waited_s() < self.stall_s:
            return
        unanswered = await asyncio.to_thread(self._ask)
        self.asked += 1
        now = self._clock()
        if unanswered is not None:
            # Kafka is away for everyone (or has no such topic): not this process's fault,
            # and not a restart's cure.
            if unanswered != self._unanswered:
                log.warning("records wait for Kafka: %s", unanswered)
            self._unanswered, self._answered_since = unanswered, None
            return
        self._unanswered = None
        if self._answered_since is None:
            self._answered_since = now
        since = max(self._answered_since, self._waiting_since or now)
        if self.stalled is None and now - since >= self.stall_s:
            self._say(
                f"the Kafka producer has had records waiting {self.waited_s():.0f}s with no "
                f"word from a broker, while a new client has reached the brokers for "
                f"{now - self._answered_since:.0f}s: restart this process"
            )

    def _say(self, reason: str) -> None:
        log.error("%s", reason)
        self.stalled = reason

    async def run(self) -> None:
        """:meth:`check` forever (cancel to stop); a failed check is logged, not raised."""
        every_s = min(CHECK_EVERY_S, self.stall_s / 4)
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("the producer's watch failed a check")
            await asyncio.sleep(every_s)
