"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streamlearn.kafka_clients import key_partition
from streamlearn.kafka_local import free_port


def load_script(path: Path, name: str) -> ModuleType:
    """A script of the repository (``scripts/``, ``bench/``: not packages) as module ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class RegistryProcess:
    """`streamlearn registry serve` running as its own process, as users run it."""

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.output = ""
        """What it printed (after :meth:`stop`)."""
        # A file, not a pipe: a pipe nobody reads until the end fills at 64 KiB and then
        # hangs the registry on its next log line (at DEBUG within seconds).
        # It lives as long as the process (closed by stop), hence no context manager.
        self._log = tempfile.TemporaryFile(mode="w+", prefix="registry-")  # noqa: SIM115
        env = {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
            "STREAMLEARN_TOPIC_PREFIX": topic_prefix,
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()  # closes the log (a registry that refused to start)
                raise RuntimeError(f"registry exited with {self.process.returncode}: {self.output}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"registry at {self.url} not ready within {timeout_s}s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not self._log.closed:
            self.output = self._read_log()
            self._log.close()
        return self.process.returncode

    def _read_log(self) -> str:
        self._log.seek(0)
        return self._log.read()


async def read_values(
    bootstrap: str, topic: str, count: int, timeout_s: float = 60, settle_s: float = 0.0
) -> list[bytes]:
    """The first ``count`` committed values of ``topic`` (read_committed), from the start;
    with ``settle_s``, also whatever arrives in that much more time (to see extras)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        received: list[bytes] = []
        async with asyncio.timeout(timeout_s):
            while len(received) < count:
                batch = await consumer.getmany(timeout_ms=1000)
                received += [r.value for records in batch.values() for r in records]
        if settle_s:
            batch = await consumer.getmany(timeout_ms=int(settle_s * 1000))
            received += [r.value for records in batch.values() for r in records]
        return received
    finally:
        await consumer.stop()


def ordered_producer(bootstrap: str, **config: Any) -> Producer:
    """A producer that writes a partition's records in the order they were produced.
    librdkafka's defaults do not: a first request a new partition refuses ("Not leader for
    partition", as a KRaft broker may right after the topic is made) is retried after the
    next one was written, and a test reading the topic saw 3,4,0,1,2 (once, under CI load).
    Idempotence keeps the order across retries (sequence numbers)."""
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **config})


def reference_sessions(
    events: list[dict[str, Any]], gap_s: float, cut_s: float = 86400.0
) -> set[tuple[Any, ...]]:
    """Offline: per user, sort by time, cut where consecutive events are ≥ gap apart or
    either side of a multiple of ``cut_s`` since the epoch (UTC midnight by default)."""
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], []).append(event)
    sessions = set()
    for user, user_events in by_user.items():
        user_events.sort(key=lambda e: e["event_ts"])
        groups: list[list[dict[str, Any]]] = [[user_events[0]]]
        for previous, event in itertools.pairwise(user_events):
            apart = (event["event_ts"] - previous["event_ts"]).total_seconds()
            period = event["event_ts"].timestamp() // cut_s
            if apart >= gap_s or period != previous["event_ts"].timestamp() // cut_s:
                groups.append([])
            groups[-1].append(event)
        for group in groups:
            urls = {e["url"] for e in group}
            sessions.add(
                (user, group[0]["event_ts"], group[-1]["event_ts"], len(group), len(urls),
                 group[0]["event_id"], group[-1]["event_id"])
            )  # fmt: skip
    return sessions


def session_tuple(session: dict[str, Any]) -> tuple[Any, ...]:
    """What a ``Session`` record says, in the shape of :func:`reference_sessions`."""
    return (
        session["user_id"], session["start_ts"], session["end_ts"], session["event_count"],
        session["page_count"], session["first_event_id"], session["last_event_id"],
    )  # fmt: skip


def end_offsets(
    consumer: Any, topic: str, partitions: Any, timeout_s: float = 30
) -> dict[int, int]:
    """High watermarks per partition, retrying while a new topic's leaders settle (a partition
    can be in the metadata a moment before its leader serves offset requests)."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    deadline = time.monotonic() + timeout_s
    ends: dict[int, int] = {}
    for partition in partitions:
        while True:
            try:
                ends[partition] = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )[1]
                break
            except KafkaException as exc:
                error = exc.args[0]
                # Not leader: the partition's leadership is still settling (librdkafka does
                # not mark it retriable for a watermark query).
                settling = error.retriable() or error.code() in (
                    KafkaError.NOT_LEADER_FOR_PARTITION,
                    KafkaError.LEADER_NOT_AVAILABLE,
                )
                if not settling or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    return ends


_SETTLING_GROUP = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)


def committed_to_end(settings: Any, topic: str, group: str | None = None) -> bool:
    """Whether the agents' consumer group (or ``group``) has committed every offset of our
    ``topic``."""
    from confluent_kafka import Consumer, TopicPartition

    name = settings.topic_prefix + topic
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": group or f"{settings.topic_prefix}streamlearn-agents",
        }
    )
    try:
        partitions = list(consumer.list_topics(name, timeout=30).topics[name].partitions)
        ends = end_offsets(consumer, name, partitions)
        try:
            offsets = consumer.committed([TopicPartition(name, p) for p in partitions], timeout=10)
        except KafkaException as exc:
            # The group's coordinator is loading or moving (NOT_COORDINATOR): not yet known,
            # which the callers' polling loops ask again.
            if exc.args[0].retriable() or exc.args[0].code() in _SETTLING_GROUP:
                return False
            raise
        return all(tp.offset >= ends[tp.partition] for tp in offsets if ends[tp.partition] > 0)
    finally:
        consumer.close()


def flush_events(
    template: dict[str, Any], at: datetime, partitions: int = 6
) -> list[dict[str, Any]]:
    """One event (like ``template``, at ``at``) per partition, each of its own user: every
    partition's event time moves to ``at``, which closes every session before it."""
    users: dict[int, str] = {}
    for n in itertools.count():
        user = f"flush-{n}"
        users.setdefault(key_partition(user.encode(), partitions), user)
        if len(users) == partitions:
            break
    return [
        dict(template, event_id=str(uuid.uuid4()), user_id=user, client_ts=at, received_ts=at)
        for user in users.values()
    ]


async def serve_app(app: Any) -> tuple[Any, str]:
    """An aiohttp application served on a free loopback port: (runner, base URL); the
    caller cleans the runner up. A prediction worker's app is served as ``serve`` serves
    it (predictions before the router); any other app as ``web.AppRunner`` serves it."""
    from aiohttp import web

    from streamlearn.serving.shortcut import ServingRunner

    runner = ServingRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def click_examples(
    count: int, *, seed: int = 3, model_name: str = "ctr", first: int = 0
) -> list[dict[str, Any]]:
    """``TrainingExample`` records of ``model_name`` labelled by the synthetic click world."""
    from streamlearn.models.synthetic import ClickWorld

    return ClickWorld(seed=seed).training_examples(count, model_name=model_name, first=first)


def fuzz_from_document(
    document_url: str,
    max_examples: int = 50,
    excluded_checks: list[Any] | None = None,
    streaming_paths: frozenset[str] = frozenset(),
) -> set[str]:
    """Every operation of the OpenAPI document at ``document_url`` called with
    schemathesis-generated requests, valid ones and (where there is anything to make
    invalid) invalid ones, each answer checked against the document (status, content
    type, body schema, headers; no 5xx; valid requests accepted, invalid ones refused).
    Returns the operations checked ("POST /path"). ``streaming_paths`` answer streams that
    end only when the client goes (server-sent events): a fuzzer reading a whole body cannot
    call them, so they are left to their own tests."""
    import schemathesis
    from hypothesis import HealthCheck, given
    from hypothesis import settings as hypothesis_settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(document_url)
    checked = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in streaming_paths:
            continue
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                case.call_and_validate(excluded_checks=excluded_checks)

            try:
                call()
            except Unsatisfiable:
                # Nothing to make invalid (an operation without parameters or body).
                assert mode is GenerationMode.NEGATIVE, operation.path
        checked.add(f"{operation.method.upper()} {operation.path}")
    return checked
