"""Sessions of history are a function of the log: the same records, read at any speed,
after any pause, give the offline reference's sessions.

Six hours of past telemetry from 60 browser users (sessions separated by more than the
30-minute gap, arrival order shuffled within 15 s, allowed lateness 20 s) are produced
to a running preprocess + sessionise whose partitions have been quiet for a few seconds;
then the same records again into a fresh namespace, with a pause halfway longer than the
allowed lateness. Nothing arrives later than the allowed lateness, so every session comes
out once, whole, with no late event: a wall clock moving event time on during the pause
would make the records after it late (measured before the runtime: every session record
that straddled the pause).
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from tests.agent_workers import Workers, read_topic, running
from tests.conftest import REPO_ROOT
from tests.support import flush_events, reference_sessions, session_tuple

T0 = datetime(2026, 11, 29, 6, 0, tzinfo=UTC)
USERS = 60
HOURS = 6
GAP_S = 1800
LATENESS_S = 20
SHUFFLE_S = 15
PAUSE_S = 30  # longer than the allowed lateness and than session_idle_s (10 s)
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)


def _ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def history(seed: int = 12) -> list[dict[str, Any]]:
    """The events, in arrival order (received order shuffled within SHUFFLE_S)."""
    rng = random.Random(seed)
    arriving: list[tuple[datetime, dict[str, Any]]] = []
    end = T0 + timedelta(hours=HOURS)
    for u in range(USERS):
        user, ua, ip = f"browser-{u}", BROWSERS[u % 3], f"198.51.100.{u + 1}"
        at = T0 + timedelta(seconds=rng.uniform(0, 1800))
        while at < end:
            for _ in range(rng.randint(1, 8)):
                received = at + timedelta(seconds=rng.uniform(0.05, 2.0))
                event = {
                    "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "event_type": "page_view",
                    "user_id": user,
                    "client_ts": _ms(at),
                    "received_ts": _ms(received),
                    "url": f"https://shop.example/p/{rng.randint(1, 20)}",
                    "user_agent": ua,
                    "ip": ip,
                    "app_version": "shop-web 4.2.0",
                }
                arriving.append((received + timedelta(seconds=rng.uniform(0, SHUFFLE_S)), event))
                at += timedelta(seconds=rng.uniform(20, 400))
            at += timedelta(seconds=rng.uniform(GAP_S * 1.2, GAP_S * 3))
    arriving.sort(key=lambda pair: pair[0])
    return [event for _, event in arriving]


def _produce(settings: Settings, serde: AvroSerde, events: list[dict[str, Any]]) -> None:
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
        }
    )
    topic = settings.topic_prefix + "telemetry.events"
    for event in events:
        producer.produce(topic, key=event["user_id"].encode(), value=serde.encode(event))
        producer.poll(0)
    assert producer.flush(30) == 0


def _sessions_of(
    settings: Settings, registry: RegistryClient, reference: set[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """The session records of our history (not the flush's), read until they hold the
    reference or stop coming for 15 s."""
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + "events.sessions", "Session")
    last_change = [time.monotonic(), 0]

    def settled(messages: list[Any]) -> bool:
        if len(messages) != last_change[1]:
            last_change[:] = [time.monotonic(), len(messages)]
        final = {s["session_id"]: s for s in (serde.decode(m.value()) for m in messages)}
        complete = {session_tuple(s) for s in final.values()} >= reference
        return complete or (bool(messages) and time.monotonic() - last_change[0] > 15)

    messages = read_topic(settings, "events.sessions", settled, timeout_s=180)
    return [
        session
        for session in (serde.decode(m.value()) for m in messages)
        if not session["user_id"].startswith("flush-")
    ]


def _namespace(system_settings: Settings, admin: AdminClient, name: str) -> Settings:
    prefix = f"{system_settings.topic_prefix}{name}."
    settings = system_settings.model_copy(update={"topic_prefix": prefix})
    topology = load_topology(REPO_ROOT / "topology" / "topics.yaml")
    apply_topology(admin, desired_topics(topology, prefix))
    return settings


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Any) -> Settings:
    return system_settings.model_copy(
        update={
            "data_dir": tmp_path,
            "session_gap_s": GAP_S,
            "session_allowed_lateness_s": LATENESS_S,
        }
    )


def test_sessions_of_history_equal_the_offline_reference_whatever_the_timing(
    settings: Settings, admin: AdminClient
) -> None:
    events = history()
    truth = [dict(e, event_ts=e["client_ts"]) for e in events]
    reference = reference_sessions(truth, GAP_S)
    flush = flush_events(events[0], T0 + timedelta(days=1, hours=HOURS))
    registry = RegistryClient(settings.schema_registry_url)
    runs: list[list[dict[str, Any]]] = []
    try:
        for run, pause_s in (("first", 0.0), ("replay", PAUSE_S)):
            namespace = _namespace(settings, admin, run)
            serde = AvroSerde.for_topic(
                registry, namespace.topic_prefix + "telemetry.events", "TelemetryEvent"
            )
            workers = Workers(namespace, only="preprocess,sessionise", group="history")
            with running(workers, 1):
                workers.wait_for_members(1)
                time.sleep(12)  # the partitions have been quiet for longer than idle
                half = len(events) // 2
                _produce(namespace, serde, events[:half])
                time.sleep(pause_s)
                _produce(namespace, serde, events[half:] + flush)
                runs.append(_sessions_of(namespace, registry, reference))
    finally:
        registry.close()

    for run, emitted in zip(("first", "replay"), runs, strict=True):
        final = {session_tuple(s) for s in {s["session_id"]: s for s in emitted}.values()}
        late = sum(1 for s in emitted if s["late_events"])
        assert (final, len(emitted), late) == (reference, len(reference), 0), (
            f"{run}: {len(emitted)} session records for {len(reference)} sessions, "
            f"{len(final & reference)} exact, {late} with late events: none may be split, "
            "corrected or hold a late event (nothing arrives later than the allowed lateness)"
        )
    first, replay = ({s["session_id"]: dict(s, closed_ts=None) for s in run} for run in runs)
    assert first == replay, "the replay gives the same session records"
    print(f"{len(events)} events, {len(reference)} sessions, identical in both runs")


def test_a_quiet_live_partition_closes_its_sessions_after_a_restart(
    system_settings: Settings, tmp_path: Any
) -> None:
    """A live stream gone quiet closes its sessions on the timer, also when the worker
    that read its last event stopped before they closed (a deploy, a crash) and another
    took the partition over. Until 2026-12-07 a worker gave the timer no read time for a
    partition it had not read a batch of itself, so such a session stayed open until the
    partition's next event: a probe's user session was still open 100 s after its only
    event (gap 5 s, lateness 2 s, idle 3 s)."""
    settings = system_settings.model_copy(
        update={
            "data_dir": tmp_path,
            "session_gap_s": 15,
            "session_allowed_lateness_s": 2,
            "session_idle_s": 2,
        }
    )
    registry = RegistryClient(settings.schema_registry_url)
    serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.events", "TelemetryEvent"
    )
    now = _ms(datetime.now(UTC))
    event = {
        "event_id": str(uuid.uuid4()), "event_type": "page_view", "user_id": "quiet",
        "client_ts": now, "received_ts": now, "url": "https://shop.example/",
        "user_agent": BROWSERS[0], "ip": "198.51.100.7", "app_version": "shop-web 4.2.0",
    }  # fmt: skip
    workers = Workers(settings, only="preprocess,sessionise", group="quiet")
    try:
        with running(workers, 1):
            workers.wait_for_members(1)
            _produce(settings, serde, [event])
            # Read by the first worker (its clean copy out), which stops before the gap.
            read_topic(settings, "events.clean", lambda messages: bool(messages), 60)
        with running(workers, 1):
            workers.wait_for_members(1)
            sessions = read_topic(settings, "events.sessions", lambda m: bool(m), 90)
    finally:
        registry.close()
    assert len(sessions) == 1, "the session closed by the timer of the worker that took over"
