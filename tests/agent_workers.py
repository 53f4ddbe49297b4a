"""Agent worker processes and topic reading for the integration tests of the agents.

Workers are ``streamlearn agents run`` processes, as users run them; each logs to the
test's data directory for a failure's post-mortem.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streamlearn.settings import Settings


def worker_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a worker process configured like ``settings``."""
    return {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMLEARN_SESSION_GAP_S": str(settings.session_gap_s),
        "STREAMLEARN_SESSION_ALLOWED_LATENESS_S": str(settings.session_allowed_lateness_s),
        "STREAMLEARN_SESSION_IDLE_S": str(settings.session_idle_s),
        "STREAMLEARN_BOT_BURST_LENGTH": str(settings.bot_burst_length),
        "STREAMLEARN_DEDUP_WINDOW_S": str(settings.dedup_window_s),
        "STREAMLEARN_CONSUMER_SESSION_TIMEOUT_S": "6",
        "STREAMLEARN_DATA_DIR": str(settings.data_dir),
        "STREAMLEARN_MODEL_SIGNING_KEY": "integration-test-signing-key",
        "STREAMLEARN_LOG_LEVEL": os.environ.get("STREAMLEARN_LOG_LEVEL", "INFO"),
        **extra,
    }


class Workers:
    """Starts ``streamlearn agents run`` processes of one group."""

    def __init__(
        self,
        settings: Settings,
        only: str | None = None,
        group: str | None = None,
        label: str = "",
        **env: str,
    ) -> None:
        self.settings = settings
        self.label = label  # tells the logs of two Workers of one group apart
        self.args = ["--only", only] if only else []
        self.group = group
        # Always named: `agents run --only X` refuses the default group without it.
        self.args += ["--group", group or "streamlearn-agents"]
        self.env = worker_environment(settings, **env)
        self.started: list[subprocess.Popen[bytes]] = []

    @property
    def group_id(self) -> str:
        return f"{self.settings.topic_prefix}{self.group or 'streamlearn-agents'}"

    def start(self) -> subprocess.Popen[bytes]:
        group = self.group or "agents"
        name = f"{self.settings.topic_prefix}{group}{self.label}-{len(self.started) + 1}"
        log = self.settings.data_dir / f"worker-{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlearn", "agents", "run", *self.args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        self.started.append(process)
        return process

    def stop(self) -> list[int]:
        """SIGTERM every worker still running; their exit codes."""
        codes = []
        for process in self.started:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                codes.append(process.wait(timeout=60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        return codes

    def wait_for_members(self, count: int, timeout_s: float = 90) -> None:
        """Until the group is stable with ``count`` members, each assigned partitions."""
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        deadline = time.monotonic() + timeout_s
        members: list[Any] = []
        while time.monotonic() < deadline:
            group = self.group_id
            try:
                description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            except KafkaException as exc:
                # The group's coordinator is still loading or moving (a fresh broker).
                settling = (KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_COORDINATOR)
                if not (exc.args[0].retriable() or exc.args[0].code() in settling):
                    raise
                time.sleep(0.5)
                continue
            except TimeoutError:  # asked before the group existed: ask again
                continue
            members = description.members
            stable = description.state == ConsumerGroupState.STABLE
            if (
                stable
                and len(members) == count
                and all(m.assignment.topic_partitions for m in members)
            ):
                return
            time.sleep(0.5)
        raise AssertionError(f"group {self.group_id} did not reach {count} members: {members}")


@contextmanager
def running(workers: Workers, count: int) -> Iterator[Workers]:
    """``count`` workers, stopped (SIGTERM, clean exit asserted) when the block ends."""
    for _ in range(count):
        workers.start()
    try:
        yield workers
    finally:
        codes = workers.stop()
    assert codes == [0] * len(codes), f"workers did not stop cleanly: {codes}"


def read_topic(
    settings: Settings,
    topic: str,
    done: Callable[[list[Any]], bool],
    timeout_s: float = 120,
) -> list[Any]:
    """Committed messages of our ``topic`` from the start until ``done(messages)`` (or the
    timeout: the caller's assertions then show what is missing), plus any that arrive
    within a second after (a duplicate would show up there)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"check-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    name = settings.topic_prefix + topic
    try:
        partitions = consumer.list_topics(name, timeout=30).topics[name].partitions
        consumer.assign([TopicPartition(name, p, 0) for p in partitions])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while not done(messages) and time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.5):
                assert message.error() is None
                messages.append(message)
        messages += consumer.consume(500, timeout=1.0)
    finally:
        consumer.close()
    return messages
