"""Prediction workers against a real broker: freshness, replicas, rejected snapshots, a dead
broker, readiness, and a schema-driven fuzz of the HTTP API against /openapi.json."""

from __future__ import annotations

import asyncio
import gc
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr

from streamlearn.kafka_clients import produce_confirmed
from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.models.configured import configured_spec
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving.experiment_topic import publish_experiment, read_experiments
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.serving.runner import check_bindable
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from tests.conftest import REPO_ROOT
from tests.serving_support import KEY, Worker, instances, snapshot, start_worker
from tests.support import RegistryProcess, fuzz_from_document, read_values


@pytest.fixture
def settings(system_settings: Settings) -> Settings:
    return system_settings.model_copy(
        update={
            "model_signing_key": SecretStr(KEY),
            "models": ["ctr"],
            "serve_max_instances": 500,
        }
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def publish(
    settings: Settings, registry: RegistryClient, record: dict[str, Any], key: str | None = None
) -> None:
    """``record`` on model.state, keyed by its model's name unless ``key`` is given."""
    topic = settings.topic_prefix + "model.state"
    value = AvroSerde.for_topic(registry, topic, "ModelSnapshot").encode(record)
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "message.max.bytes": 16 * 1024 * 1024}
    )
    producer.produce(topic, key=(key or record["model_name"]).encode(), value=value)
    assert producer.flush(30) == 0


@pytest.fixture
async def worker(settings: Settings, registry: RegistryClient) -> AsyncIterator[Worker]:
    started = await start_worker(settings, registry)
    yield started
    await started.close()


async def test_new_snapshot_is_served_within_a_second(
    worker: Worker, settings: Settings, registry: RegistryClient
) -> None:
    await worker.wait(worker.serving.caught_up)
    for version in (1, 2, 3):
        record = snapshot(version)
        began = time.monotonic()
        await asyncio.to_thread(publish, settings, registry, record)
        while True:
            status, body = await worker.predict(instances(1)[0])
            assert status == 200
            if body["predictions"][0]["model_version"] == version:
                break
            assert time.monotonic() - began < 1.0, f"v{version} not served within 1 s"
            await asyncio.sleep(0.005)
        print(f"v{version} served {time.monotonic() - began:.3f}s after publishing")
    # Telemetry: every prediction logged with model, version, arm and worker version.
    values = await read_values(
        settings.kafka_bootstrap, settings.topic_prefix + "telemetry.predictions", 1, 20
    )
    serde = AvroSerde.for_topic(
        registry, settings.topic_prefix + "telemetry.predictions", "PredictionServed"
    )
    logged = [serde.decode(v) for v in values]
    assert logged
    first = logged[0]
    assert first["model_name"] == "ctr"
    assert first["worker_version"] == "0.1.0"
    assert first["latency_ms"] > 0
    assert set(first["features"]) == set(instances(1)[0]["features"])


def test_listing_experiments_says_what_it_ignored_and_fails_without_the_registry(
    settings: Settings, registry: RegistryClient
) -> None:
    """Found by a new user: `experiments list` with the registry away printed nothing and
    exited 0 (as if there were no experiments), and an invalid newest record (weight -1)
    was left out without a word while the workers logged and counted it."""
    from streamlearn.serde import RegistryUnavailableError
    from streamlearn.serving.experiment_topic import experiment_topic

    name = f"listed-{os.getpid()}-{time.monotonic_ns()}"
    good = Experiment(name=name, salt="s", arms=(Arm("a", "ctr", 1.0),))
    publish_experiment(settings, registry, good)
    bad = {**good.to_record(), "arms": [{"name": "a", "model_name": "ctr", "weight": -1.0}]}
    entry = experiment_topic(settings)
    produce_confirmed(settings, entry.name, name.encode(), entry.serde(registry).encode(bad))
    ignored: list[str] = []
    listed = read_experiments(settings, registry, ignored)
    [kept] = [e for e in listed if e.name == name]
    assert kept.arms == good.arms, "the workers keep the valid one"
    assert any(f"experiment {name}: record at offset" in i and "weight" in i for i in ignored)
    with (
        RegistryClient(f"http://127.0.0.1:{free_port()}") as away,
        pytest.raises(RegistryUnavailableError),
    ):
        read_experiments(settings, away)


def test_an_experiment_the_workers_ignore_can_be_deleted(
    settings: Settings, registry: RegistryClient
) -> None:
    """Found by a new user: an experiment whose only record the workers ignore (weight -1,
    written by another tool) was warned of by every `experiments list`, and `experiments
    delete` refused it ("no experiment"): nothing could end the warning. Its tombstone is
    now written, and `list` warns only of a name's newest record."""
    from streamlearn.serving.experiment_topic import experiment_topic

    name = f"ignored-{os.getpid()}-{time.monotonic_ns()}"
    record = Experiment(name=name, salt="s", arms=(Arm("a", "ctr", 1.0),)).to_record()
    bad = {**record, "arms": [{"name": "a", "model_name": "ctr", "weight": -1.0}]}
    entry = experiment_topic(settings)
    produce_confirmed(settings, entry.name, name.encode(), entry.serde(registry).encode(bad))
    before: list[str] = []
    read_experiments(settings, registry, before)
    assert any(f"experiment {name}: record at offset" in i for i in before), before
    deleted = subprocess.run(
        [sys.executable, "-m", "streamlearn", "experiments", "delete", name],
        env={
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
            "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
        },
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"experiment {name} deleted\n"
    after: list[str] = []
    read_experiments(settings, registry, after)
    assert not any(f"experiment {name}:" in i for i in after), after


async def test_two_replicas_give_the_same_arm_for_10000_users(
    settings: Settings, registry: RegistryClient, caplog: pytest.LogCaptureFixture
) -> None:
    experiment = Experiment(
        name="ctr-split",
        salt="2026-11",
        arms=(Arm("control", "ctr", 0.7), Arm("treatment", "ctr@treatment", 0.3)),
    )
    await asyncio.to_thread(publish, settings, registry, snapshot(4))
    await asyncio.to_thread(publish, settings, registry, snapshot(2, model_name="ctr@treatment"))
    await asyncio.to_thread(publish_experiment, settings, registry, experiment)
    assert await asyncio.to_thread(read_experiments, settings, registry) == [
        await asyncio.to_thread(lambda: read_experiments(settings, registry)[0])
    ]
    caplog.set_level("INFO", logger="streamlearn.serving.follower")
    replicas = [await start_worker(settings, registry) for _ in range(2)]
    try:
        for replica in replicas:
            await replica.wait(
                lambda r=replica: (
                    r.serving.book.covering("ctr") is not None  # type: ignore[misc]
                    and r.serving.store.get("ctr@treatment") is not None
                )
            )
        # Found by a new user: nothing said a worker had picked the experiment up.
        picked = "experiment ctr-split: enabled, salt 2026-11, arms control=ctr:0.7 "
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith(picked) for m in said), said
        users = [f"user-{i}" for i in range(10_000)]
        arms: list[list[tuple[str, int]]] = []
        for replica in replicas:
            seen: list[tuple[str, int]] = []
            for start in range(0, len(users), 500):
                batch = [{"user_id": u, "features": {"price": 3.5}} for u in users[start:][:500]]
                status, body = await replica.predict({"instances": batch})
                assert status == 200, body
                seen += [(p["arm"], p["model_version"]) for p in body["predictions"]]
            arms.append(seen)
        assert arms[0] == arms[1]
        assert [a for a, _ in arms[0]] == [experiment.assign(u).name for u in users]
        assert {a: v for a, v in arms[0]} == {"control": 4, "treatment": 2}
        share = sum(a == "treatment" for a, _ in arms[0]) / len(users)
        assert 0.28 < share < 0.32
        # The arm and the version that served are in the telemetry too.
        values = await read_values(
            settings.kafka_bootstrap, settings.topic_prefix + "telemetry.predictions", 1000, 20
        )
        serde = AvroSerde.for_topic(
            registry, settings.topic_prefix + "telemetry.predictions", "PredictionServed"
        )
        logged = [serde.decode(v) for v in values]
        assert len(logged) >= 1000
        for record in logged:
            arm = experiment.assign(record["user_id"])
            assert (record["experiment"], record["arm"]) == ("ctr-split", arm.name)
            assert (record["model_name"], record["model_version"]) == (
                arm.model_name,
                {"control": 4, "treatment": 2}[arm.name],
            )
    finally:
        for replica in replicas:
            await replica.close()


async def test_rejected_snapshot_leaves_the_old_version_serving(
    settings: Settings, registry: RegistryClient
) -> None:
    await asyncio.to_thread(publish, settings, registry, snapshot(1))
    worker = await start_worker(settings, registry)
    try:
        await worker.wait(lambda: worker.serving.store.version("ctr") == 1)
        tampered = snapshot(2)
        tampered["payload"] = tampered["payload"][:-1] + b"\x00"
        wrong_key = snapshot(3, key="someone-else")
        for record in (tampered, wrong_key):
            await asyncio.to_thread(publish, settings, registry, record)
        rejected = worker.serving.metrics.snapshots_rejected.labels(reason="bad_signature")
        await worker.wait(lambda: rejected._value.get() == 2)
        _, body = await worker.predict(instances(1)[0])
        assert body["predictions"][0]["model_version"] == 1
        assert not body["predictions"][0]["degraded"]
        _status, metrics = await worker.get("/metrics")
        assert 'streamlearn_serve_snapshots_rejected_total{reason="bad_signature"} 2.0' in metrics
        values = await read_values(
            settings.kafka_bootstrap, settings.topic_prefix + "monitoring.alerts", 2, 20
        )
        serde = AvroSerde.for_topic(registry, settings.topic_prefix + "monitoring.alerts", "Alert")
        alerts = [serde.decode(v) for v in values]
        assert [(a["kind"], a["model_version"]) for a in alerts] == [
            ("snapshot_rejected", 2),
            ("snapshot_rejected", 3),
        ]
        assert alerts[0]["severity"] == "critical"
        await asyncio.to_thread(publish, settings, registry, snapshot(4))
        await worker.wait(lambda: worker.serving.store.version("ctr") == 4, timeout_s=5)
    finally:
        await worker.close()


async def test_two_snapshots_of_one_version_are_said_to_be_two_writers(
    settings: Settings, registry: RegistryClient
) -> None:
    """Found by a new user: a second learner (in another consumer group) published ctr
    v25..v30 beside the first, each version twice with different models, and nothing said
    so. The worker keeps the one it has, counts the other and raises a critical alert."""
    await asyncio.to_thread(publish, settings, registry, snapshot(5))
    worker = await start_worker(settings, registry)
    try:
        await worker.wait(lambda: worker.serving.store.version("ctr") == 5)
        served = worker.serving.store.get("ctr")
        other = snapshot(5, n=400)  # another learner's v5: another model
        await asyncio.to_thread(publish, settings, registry, other)
        conflicts = worker.serving.metrics.snapshots_rejected.labels(reason="conflicting_version")
        await worker.wait(lambda: conflicts._value.get() == 1)
        assert worker.serving.store.get("ctr") is served, "the version it had still serves"
        await asyncio.to_thread(publish, settings, registry, snapshot(5))  # the same again
        await asyncio.to_thread(publish, settings, registry, snapshot(6))
        await worker.wait(lambda: worker.serving.store.version("ctr") == 6)
        assert conflicts._value.get() == 1, "a copy of the same snapshot is no conflict"
        values = await read_values(
            settings.kafka_bootstrap, settings.topic_prefix + "monitoring.alerts", 1, 20
        )
        serde = AvroSerde.for_topic(registry, settings.topic_prefix + "monitoring.alerts", "Alert")
        (alert,) = [serde.decode(v) for v in values]
        assert (alert["kind"], alert["model_version"], alert["severity"]) == (
            "snapshot_rejected",
            5,
            "critical",
        )
        assert "conflicting_version" in alert["message"]
        assert "two learners" in alert["message"]
    finally:
        await worker.close()


async def test_snapshots_must_match_the_configured_spec(
    settings: Settings, registry: RegistryClient
) -> None:
    """A label-horizon override changes the spec text: the worker, configured like the
    learner, refuses a snapshot of the shipped spec and loads one of the configured spec."""
    configured = settings.model_copy(update={"label_horizon_s": 600.0})
    worker = await start_worker(configured, registry)
    try:
        await asyncio.to_thread(publish, configured, registry, snapshot(1))
        unknown = worker.serving.metrics.snapshots_rejected.labels(reason="unknown_spec")
        await worker.wait(lambda: unknown._value.get() == 1)
        spec = configured_spec("ctr", configured)
        await asyncio.to_thread(publish, configured, registry, snapshot(2, spec=spec))
        await worker.wait(lambda: worker.serving.store.version("ctr") == 2)
    finally:
        await worker.close()


async def test_ready_when_every_published_model_is_loaded_not_before(
    settings: Settings, registry: RegistryClient
) -> None:
    """Readiness waits for what model.state holds, never for a model nobody published yet:
    on a fresh install the workers' fallback answers are what produce the first training
    examples, so waiting for the first model would wait forever (a Kubernetes Service sends
    no traffic to a pod that is not ready)."""
    both = settings.model_copy(update={"models": ["ctr", "ctr_tree"]})
    await asyncio.to_thread(publish, both, registry, snapshot(1, key="someone-else"))
    worker = await start_worker(both, registry)
    try:
        await worker.wait(lambda: worker.serving.caught_up())
        status, body = await worker.get("/readyz")
        # ctr was published but its only snapshot is rejected: not ready (a wrong signing
        # key stops a rollout); ctr_tree was never published: no reason to wait.
        assert (status, body["missing"], body["unpublished"]) == (503, ["ctr"], ["ctr_tree"])
        await asyncio.to_thread(publish, both, registry, snapshot(2))
        await worker.wait(lambda: worker.serving.store.get("ctr") is not None)
        status, body = await worker.get("/readyz")
        assert (status, body["status"], body["missing"]) == (200, "ready", [])
        assert body["unpublished"] == ["ctr_tree"]
        _, answer = await worker.predict(instances(1)[0], model="ctr_tree")
        assert answer["predictions"][0]["degraded_reason"] == "no_model"
        assert (await worker.get("/healthz"))[0] == 200
    finally:
        await worker.close()


async def test_a_fresh_worker_with_nothing_published_is_ready(
    settings: Settings, registry: RegistryClient
) -> None:
    worker = await start_worker(settings, registry)
    try:
        await worker.wait(lambda: worker.serving.caught_up())
        status, body = await worker.get("/readyz")
        assert (status, body["status"], body["unpublished"]) == (200, "ready", ["ctr"])
    finally:
        await worker.close()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Any]:
    """A broker of this test alone, which the test stops."""
    broker = embedded_kafka(Settings(), port=free_port(), data_dir=tmp_path / "kafka")
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    try:
        yield broker, status.bootstrap
    finally:
        gc.collect()
        broker.stop()


async def test_dead_broker_keeps_the_last_model_and_counts_telemetry_drops(
    own_broker: Any, settings: Settings, registry: RegistryClient
) -> None:
    broker, bootstrap = own_broker
    isolated = settings.model_copy(
        update={
            "kafka_bootstrap": bootstrap,
            "serve_telemetry_buffer": 50,
            "kafka_producer_stall_s": 1.0,
        }
    )
    topology = load_topology(REPO_ROOT / "topology" / "topics.yaml")
    apply_topology(
        AdminClient({"bootstrap.servers": bootstrap}),
        desired_topics(topology, isolated.topic_prefix),
    )
    await asyncio.to_thread(publish, isolated, registry, snapshot(7))
    worker = await start_worker(isolated, registry)
    try:
        await worker.wait(lambda: worker.serving.store.version("ctr") == 7)
        for _ in range(10):
            assert (await worker.predict(instances(1)[0]))[0] == 200
        sent = worker.serving.metrics.telemetry_sent
        await worker.wait(lambda: sent._value.get() >= 10)
        # The follower is answered by the broker (records or not) and has read everything...
        progress = worker.serving.follower.progress
        healthy_age = progress.answer_age_s("model.state")
        assert progress.lag_records("model.state") == 0
        await asyncio.to_thread(broker.stop)
        # ...and, the broker gone, the age of its last answer grows (aiokafka retries inside
        # getmany without an error the follower would count: this is what says it).
        await worker.wait(lambda: progress.answer_age_s("model.state") > healthy_age + 3)
        latencies = []
        for request in instances(300):
            began = time.perf_counter()
            status, body = await worker.predict(request)
            latencies.append(time.perf_counter() - began)
            assert status == 200
            assert body["predictions"][0]["model_version"] == 7
            assert not body["predictions"][0]["degraded"]
        latencies.sort()
        print(f"broker down: p50 {latencies[150] * 1000:.2f} ms, p99 {latencies[296] * 1000:.2f}")
        status, metrics = await worker.get("/metrics")
        dropped = {
            line.split('reason="', 1)[1].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("streamlearn_serve_telemetry_dropped_total{")
        }
        # Records beyond the bounds were dropped, not waited for...
        assert sum(dropped.values()) >= 200, metrics
        # ...and no request waited on Kafka: the records queued when the broker went away
        # time out after the producer's delivery timeout (30 s); every request was answered
        # before any of them did. (Without asserting a latency: tests never time speed.)
        assert dropped.get("delivery_failed", 0.0) == 0.0, metrics
        status, body = await worker.get("/readyz")
        assert status == 200, "a loaded model stays loaded while Kafka is away"
        # The telemetry watch asked the brokers, which are away: a restart would not help.
        assert worker.serving.telemetry is not None
        watch = worker.serving.telemetry.watch
        await worker.wait(lambda: watch.asked >= 1)
        assert (await worker.get("/healthz"))[0] == 200, "brokers away: still live"
        assert 'streamlearn_serve_follower_fetch_age_seconds{topic="model.state"}' in metrics
    finally:
        began = time.monotonic()
        await worker.close()
        print(f"shutdown with the broker down took {time.monotonic() - began:.1f}s")


async def test_a_telemetry_producer_that_cannot_get_through_fails_liveness(
    settings: Settings, registry: RegistryClient
) -> None:
    """Predictions answered while the telemetry producer confirms nothing, and a new client
    reaches the brokers: every record is lost until a restart, so /healthz fails (see
    test_collector for the same watch). Its producer is sent where no broker listens."""
    quick = settings.model_copy(update={"kafka_producer_stall_s": 1.0})
    await asyncio.to_thread(publish, quick, registry, snapshot(3))
    worker = await start_worker(
        quick,
        registry,
        telemetry_producer_config={
            "bootstrap.servers": f"127.0.0.1:{free_port()}",
            "message.timeout.ms": 500,
        },
    )
    try:
        await worker.wait(lambda: worker.serving.store.version("ctr") == 3)
        assert (await worker.get("/healthz"))[0] == 200
        deadline = time.monotonic() + 60
        while (health := await worker.get("/healthz"))[0] == 200:
            assert (await worker.predict(instances(1)[0]))[0] == 200
            assert time.monotonic() < deadline, "never said stalled"
            await asyncio.sleep(0.3)
        status, body = health
        assert status == 503
        assert "no word from a broker" in body["reason"]
        assert (await worker.get("/readyz"))[0] == 200, "it still serves: readiness holds"
    finally:
        await worker.close()


# --- Schema-driven fuzzing against /openapi.json -------------------------------------------


def _inline(schema: Any, components: dict[str, Any]) -> Any:
    """``schema`` with every local ``$ref`` replaced by what it points to."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline(components[schema["$ref"].rsplit("/", 1)[1]], components)
        return {k: _inline(v, components) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inline(v, components) for v in schema]
    return schema


class ServeProcess:
    """`streamlearn serve` as users run it: its own process, settings from the environment.

    (Also what the fuzz test needs: hypothesis refuses strategies during which the global
    ``random`` state changes, which Kafka clients on a thread of this process would do.)
    """

    def __init__(self, settings: Settings, *args: str) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
            "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
            "STREAMLEARN_MODEL_SIGNING_KEY": KEY,
            "STREAMLEARN_MODELS": json.dumps(settings.models),
            "STREAMLEARN_SERVE_MAX_INSTANCES": str(settings.serve_max_instances),
            "STREAMLEARN_SERVE_MAX_BODY_BYTES": str(settings.serve_max_body_bytes),
            "STREAMLEARN_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "serve", "--port", str(self.port), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, self.process.communicate()
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            assert time.monotonic() < deadline, "worker not ready in time"
            time.sleep(0.1)

    def stop(self) -> tuple[int, float, str]:
        """SIGTERM; returns exit code, seconds to exit and stderr."""
        began = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return self.process.returncode, time.monotonic() - began, stderr


FUZZ_MAX_BODY_BYTES = 8192


@pytest.fixture
def fuzz_target(settings: Settings) -> Iterator[tuple[ServeProcess, dict[str, Any]]]:
    with RegistryClient(settings.schema_registry_url) as registry:
        publish(settings, registry, snapshot(1))
        publish(settings, registry, snapshot(1, model_name="ctr@b"))
        publish_experiment(
            settings,
            registry,
            Experiment(name="fuzz", salt="f", arms=(Arm("a", "ctr", 1), Arm("b", "ctr@b", 1))),
        )
    small = settings.model_copy(
        update={"serve_max_instances": 4, "serve_max_body_bytes": FUZZ_MAX_BODY_BYTES}
    )
    target = ServeProcess(small)
    try:
        target.wait_ready()
        document = orjson.loads(target.request("GET", "/openapi.json")[2])
        yield target, document
    finally:
        code, seconds, stderr = target.stop()
        assert code == 0, stderr
        assert seconds < 15
        print(f"`streamlearn serve` stopped on SIGTERM in {seconds:.1f}s")


def _check(
    document: dict[str, Any], path: str, method: str, response: tuple[int, str, bytes]
) -> int:
    status, content_type, body = response
    assert status < 500, (status, body[:500])
    declared = document["paths"][path][method]["responses"]
    assert str(status) in declared, f"{method} {path}: undocumented status {status}: {body!r}"
    media = declared[str(status)]["content"]
    assert content_type.split(";")[0] in media, (status, content_type, body[:200])
    schema = media[content_type.split(";")[0]]["schema"]
    if content_type.startswith("application/json"):
        full = {**_inline(schema, document["components"]["schemas"])}
        jsonschema.Draft202012Validator(full).validate(orjson.loads(body))
    return status


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["user_id", "features", "instances", "x"]) | st.text(),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)
IDENTIFIERS = st.text(min_size=1, max_size=20).filter(lambda text: not text.isspace())
# What the document allows: ids not only white space, names of 1-256 characters without
# "=", numbers strictly within ±2^63 (what models can learn from), strings of at most
# MAX_TEXT_CHARS.
NAMES = st.text(min_size=1, max_size=8).filter(lambda name: "=" not in name)
FEATURES = st.dictionaries(
    NAMES,
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
    | st.floats(min_value=-(2.0**63), max_value=2.0**63, exclude_min=True, exclude_max=True)
    | st.text(max_size=10),
    max_size=6,
)


@st.composite
def instance(draw: st.DrawFn) -> dict[str, Any]:
    value: dict[str, Any] = {"user_id": draw(IDENTIFIERS), "features": draw(FEATURES)}
    if draw(st.booleans()):
        value["context"] = draw(st.dictionaries(NAMES, st.text(max_size=8)))
    if draw(st.booleans()):
        value["request_id"] = draw(IDENTIFIERS)
    return value


@st.composite
def predict_request(draw: st.DrawFn, max_instances: int) -> dict[str, Any]:
    """Requests the document calls valid (checked against it in the test)."""
    if draw(st.booleans()):
        return draw(instance())
    batch: dict[str, Any] = {
        "instances": draw(st.lists(instance(), min_size=1, max_size=max_instances))
    }
    if draw(st.booleans()):
        batch["request_id"] = draw(IDENTIFIERS)
    return batch


def _shared_request_ids(request: dict[str, Any]) -> bool:
    """Whether two predictions of ``request`` would get one request id: their own, or the
    request's with ``-<index>`` for an instance without one."""
    items = request.get("instances")
    if items is None:
        return False
    base = request.get("request_id")
    ids = [
        item.get("request_id") or (f"{base}-{i}" if base is not None else f"generated-{i}")
        for i, item in enumerate(items)
    ]
    return len(set(ids)) < len(ids)


MODEL_NAMES = st.sampled_from(["ctr", "ctr@b", "nope"]) | st.text(min_size=1, max_size=12)


def test_fuzzed_requests_get_documented_answers(
    fuzz_target: tuple[ServeProcess, dict[str, Any]],
) -> None:
    target, document = fuzz_target
    components = document["components"]["schemas"]
    request_schema = jsonschema.Draft202012Validator(
        _inline({"$ref": "#/x/PredictRequest"}, components)
    )
    limit = components["BatchRequest"]["properties"]["instances"]["maxItems"]
    valid_requests = predict_request(limit + 1)
    predict_path = "/v1/models/{name}:predict"
    statuses: dict[int, int] = {}

    def predict(name: str, body: bytes) -> None:
        path = f"/v1/models/{urllib.parse.quote(name, safe='')}:predict"
        status = _check(document, predict_path, "post", target.request("POST", path, body))
        statuses[status] = statuses.get(status, 0) + 1

    common = hypothesis_settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )

    @common
    @given(request=valid_requests)
    def schema_valid(request: Any) -> None:
        response = target.request("POST", "/v1/models/ctr:predict", json.dumps(request).encode())
        status = _check(document, predict_path, "post", response)
        statuses[status] = statuses.get(status, 0) + 1
        # Valid per the document means served; one instance over its maxItems is a 422,
        # like any other request that does not fit the document's schema. So is a batch
        # whose predictions would share a request id (a rule across items that a JSON
        # schema cannot state; the document says it in words).
        if request_schema.is_valid(request) and not _shared_request_ids(request):
            assert status == 200, response
        elif request_schema.is_valid(request):
            assert status == 422, response
            assert b"request_id" in response[2], response
        else:
            assert len(request["instances"]) == limit + 1
            assert status == 422, response

    @common
    @given(name=MODEL_NAMES, body=JSON_VALUES)
    def any_json(name: str, body: Any) -> None:
        predict(name, json.dumps(body).encode())

    @common
    @given(name=MODEL_NAMES, body=st.binary(max_size=300))
    def any_bytes(name: str, body: bytes) -> None:
        predict(name, body)

    @common
    @given(name=MODEL_NAMES)
    def get_model(name: str) -> None:
        path = f"/v1/models/{urllib.parse.quote(name, safe='')}"
        _check(document, "/v1/models/{name}", "get", target.request("GET", path))

    schema_valid()
    any_json()
    any_bytes()
    get_model()
    predict("ctr", b" " * (FUZZ_MAX_BODY_BYTES + 1))  # the documented 413
    for path in ("/v1/models", "/healthz", "/readyz", "/metrics"):
        _check(document, path, "get", target.request("GET", path))
    print(f"fuzzed predict statuses: {dict(sorted(statuses.items()))}")
    assert {200, 400, 404, 413, 422} <= set(statuses)


def test_schemathesis_finds_the_worker_as_its_document_says(
    fuzz_target: tuple[ServeProcess, dict[str, Any]],
) -> None:
    target, _ = fuzz_target
    checked = fuzz_from_document(f"http://127.0.0.1:{target.port}/openapi.json")
    assert "POST /v1/models/{name}:predict" in checked


def test_a_worker_opens_its_port_once_it_has_read_the_models_published_before_it(
    settings: Settings, registry: RegistryClient
) -> None:
    publish(settings, registry, snapshot(1))
    target = ServeProcess(settings)
    body = json.dumps({"instances": instances(1)}).encode()
    try:
        deadline = time.monotonic() + 60
        while True:  # the first request the port takes
            assert target.process.poll() is None, target.process.communicate()
            try:
                status, _, answer = target.request("POST", "/v1/models/ctr:predict", body)
                break
            except OSError:
                assert time.monotonic() < deadline, "the worker never opened its port"
                time.sleep(0.005)
        assert status == 200, answer
        prediction = orjson.loads(answer)["predictions"][0]
        assert (prediction["model_version"], prediction["degraded"]) == (1, False)
    finally:
        code, _, stderr = target.stop()
    assert code == 0, stderr


def test_serve_with_two_workers_answers_on_one_port_and_stops_as_one(
    settings: Settings, registry: RegistryClient
) -> None:
    publish(settings, registry, snapshot(1))
    metrics_port = free_port()
    while not _bindable(metrics_port + 1):
        metrics_port = free_port()
    target = ServeProcess(settings, "--workers", "2", "--metrics-port", str(metrics_port))
    try:
        target.wait_ready()
        pid = target.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 2  # the two workers; the command waits for them
        body = json.dumps({"instances": instances(1)}).encode()
        # Ready is one worker's /readyz; the other may still be reading model.state, but it
        # opens the port only once it has: every answer comes from the model. Each one's
        # own port says when both are (then the kernel spreads connections over both).
        deadline = time.monotonic() + 60
        while not all(_own_ready(metrics_port + i) for i in range(2)):
            assert time.monotonic() < deadline, "a worker's own /readyz never said ready"
            time.sleep(0.1)
        time.sleep(0.5)  # its shared port opens right after its startup step
        for _ in range(40):  # a connection each: the kernel spreads them over both
            status, _, answer = target.request("POST", "/v1/models/ctr:predict", body)
            assert status == 200, answer
            assert orjson.loads(answer)["predictions"][0]["model_version"] == 1
        # Each process's own metrics port: the two add up to what was served.
        served = [_predictions_served(metrics_port + i) for i in range(2)]
        assert sum(served) == 40, served
        assert all(served), served
    finally:
        code, _, stderr = target.stop()
    assert code == 0, stderr
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{child}").exists() for child in children):
        assert time.monotonic() < deadline, "a worker outlived the command"
        time.sleep(0.1)


def _bindable(port: int) -> bool:
    try:
        check_bindable("127.0.0.1", port)
    except OSError:
        return False
    return True


def _own_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _predictions_served(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = "streamlearn_serve_predictions_total{"
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def test_experiments_set_and_list_from_the_command_line(settings: Settings) -> None:
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "streamlearn", "experiments", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = cli("set", "split", "--arm", "control=ctr:0.7", "--arm", "treatment=ctr@t:0.3")
    assert done.returncode == 0, done.stderr
    done = cli("set", "split", "--arm", "control=ctr:0.5", "--arm", "treatment=ctr@t:0.5",
               "--salt", "s2", "--description", "halves")  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    [record] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert record["salt"] == "s2"
    assert [a["weight"] for a in record["arms"]] == [0.5, 0.5]
    assert record["description"] == "halves"
    bad = cli("set", "x", "--arm", "control")
    assert bad.returncode == 1
    assert "NAME=MODEL" in bad.stderr
    invalid = cli("set", "x", "--arm", "a=ctr:0")
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("streamlearn: error: experiment x: weights sum to 0")
    # A typo in a model name would route its users to the fallback for good: refused.
    typo = cli("set", "typo", "--arm", "a=ctr:0.5", "--arm", "b=ctr_tre@x:0.5")
    assert typo.returncode == 1
    assert "experiment 'typo': arm b: no model spec 'ctr_tre' (known: " in typo.stderr
    assert [json.loads(line)["name"] for line in cli("list", "--json").stdout.splitlines()] == [
        "split"
    ], "nothing was published"
    # Another enabled experiment covering ctr takes it over if its name sorts first: said.
    other = cli("set", "another", "--arm", "a=ctr:1")
    assert other.returncode == 0, other.stderr
    assert (
        "warning: experiment 'split' also covers ctr: 'another' routes it (of several "
        "enabled experiments covering a model, the name that sorts first routes)"
    ) in other.stderr
    quiet = cli("set", "another", "--arm", "a=ctr:1", "--disable")
    assert quiet.returncode == 0, quiet.stderr
    assert "warning" not in quiet.stderr, "a disabled experiment routes nothing"
    # Found by a new user: nothing deleted one; a disabled one stays listed for good.
    deleted = cli("delete", "another")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "experiment another deleted"
    names = [json.loads(line)["name"] for line in cli("list", "--json").stdout.splitlines()]
    assert names == ["split"]
    unknown = cli("delete", "nosuch")
    assert unknown.returncode == 1
    assert "no experiment 'nosuch'; there are: split" in unknown.stderr


def test_what_a_worker_read_while_the_registry_was_down_is_applied_once_it_is_back(
    settings: Settings,
) -> None:
    """A registry that does not answer is not the record's fault: the worker reads the
    model and the experiment again once it answers, instead of skipping them for good (the
    experiment was ignored until someone set it again; the model until the next version)."""
    experiment = Experiment(name="blip", salt="b", arms=(Arm("only", "ctr", 1.0),))
    store_prefix = settings.topic_prefix + "registry."
    first = RegistryProcess(settings.kafka_bootstrap, store_prefix)
    port = first.port
    own = settings.model_copy(update={"schema_registry_url": first.url})
    try:
        with RegistryClient(first.url) as registry:
            publish(own, registry, snapshot(3))
            publish_experiment(own, registry, experiment)
    finally:
        first.stop()
    worker = ServeProcess(own)
    lines: list[str] = []
    assert worker.process.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(worker.process.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("unreachable" in line for line in lines):
            assert worker.process.poll() is None, lines
            assert time.monotonic() < deadline, lines
            time.sleep(0.1)
        # The registry back on its address, with its schemas (stored on Kafka).
        back = RegistryProcess(settings.kafka_bootstrap, store_prefix, port=port)
        try:
            try:
                worker.wait_ready(60)
            except AssertionError:
                raise AssertionError("".join(lines[-20:])) from None
            body = json.dumps({"user_id": "u-1", "features": {"price": 2.0}}).encode()
            status, _, answer = worker.request("POST", "/v1/models/ctr:predict", body)
            assert status == 200, answer
            [prediction] = json.loads(answer)["predictions"]
            assert (prediction["experiment"], prediction["arm"]) == ("blip", "only")
            assert prediction["model_version"] == 3
        finally:
            back.stop()
    finally:
        worker.stop()
