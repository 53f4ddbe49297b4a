"""Whether a worker can reach Kafka, for its ``/readyz``.

A worker whose brokers are away keeps running: its consumer retries, nothing is lost, and
it goes on where it was once they are back. Its event loop still beats, so liveness stays
true (a restart would not bring the brokers back). But an operator, ``up`` and a rollout
should see that it is not doing its job: :class:`BrokerProbe` asks the cluster for its
metadata every ``every_s`` from a daemon thread, with a client of its own (Faust's and
aiokafka's connection state is private, and an idle consumer looks the same as a cut off
one from outside), and keeps the last answer's error for the readiness check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

KAFKA_UNREACHABLE = "kafka unreachable"
"""The readiness status of a worker whose probe failed (``up`` does not restart for it)."""
EVERY_S = 5.0
TIMEOUT_S = 5.0


class BrokerProbe:
    """The last metadata request's outcome: :attr:`error` is None while Kafka answers (and
    before the first answer), else what went wrong."""

    def __init__(
        self,
        settings: Settings,
        *,
        every_s: float = EVERY_S,
        timeout_s: float = TIMEOUT_S,
        new_admin: Callable[[dict[str, Any]], Any] = AdminClient,
    ) -> None:
        self._config = confluent_config(settings)
        self._bootstrap = settings.kafka_bootstrap
        self._every_s = every_s
        self._timeout_s = timeout_s
        self._new_admin = new_admin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.asked = 0
        """Requests answered or failed so far (a test waits for the first)."""

    def start(self) -> BrokerProbe:
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def ask(self, admin: Any) -> None:
        """One metadata request; its outcome in :attr:`error` (changes logged once)."""
        try:
            admin.list_topics(timeout=self._timeout_s)
            error = None
        except KafkaException as exc:
            reason = exc.args[0] if exc.args else exc
            text = reason.str() if isinstance(reason, KafkaError) else str(reason)
            # The address asked, for an operator to compare with the broker's.
            error = f"Kafka unreachable: {text} (at {self._bootstrap}, STREAMLEARN_KAFKA_BOOTSTRAP)"
        if error != self.error:
            if error is None:
                log.info("Kafka answers again")
            else:
                log.warning("%s", error)
        self.error = error
        self.asked += 1

    def _run(self) -> None:
        admin = self._new_admin(self._config)
        try:
            while not self._stop.is_set():
                admin.poll(0)  # hands librdkafka's queued log lines to logging
                self.ask(admin)
                self._stop.wait(self._every_s)
        except Exception:
            # A bug must not leave a stale answer: say so in the readiness check.
            log.exception("the Kafka probe stopped")
            self.error = "the Kafka probe stopped; see the worker's log"
        finally:
            del admin  # its librdkafka threads end with it
