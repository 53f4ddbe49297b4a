"""Fixtures shared by every test tier.

One real Apache Kafka broker serves the whole session: the embedded KRaft broker started
here, or the cluster named by ``STREAMLEARN_KAFKA_BOOTSTRAP`` when that is set. Tests
isolate themselves with unique topic and group names instead of separate brokers.
"""

from __future__ import annotations

import gc
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from pydantic import SecretStr

from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from tests.file_order import file_order
from tests.support import RegistryProcess

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
_TIERS = ("unit", "integration", "e2e")


def _librdkafka_threads() -> dict[str, str]:
    """Thread id → name of this process's librdkafka threads (``rdk:main``, ``rdk:broker…``):
    each live Kafka client of confluent-kafka owns some."""
    threads = {}
    for task in Path("/proc/self/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        if name.startswith("rdk:"):
            threads[task.name] = name
    return threads


_LEAKS: list[tuple[str, int]] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Note each test that leaves a Kafka client of confluent-kafka alive after its
    fixtures are gone: it would log reconnect attempts to the stopped broker over the end
    of the report (and it holds connections until the process exits)."""
    before = set(_librdkafka_threads())
    yield
    if set(_librdkafka_threads()) - before:
        # A client dropped but not yet collected (held in a reference cycle) is no leak.
        # Collected only then: a full collection after every test took ~0.1-0.4 s each,
        # most of the unit tier's time.
        gc.collect()
        leaked = set(_librdkafka_threads()) - before
        if leaked:
            _LEAKS.append((item.nodeid, len(leaked)))


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _LEAKS and Path("/proc/self/task").exists():
        lines = "\n".join(f"  {nodeid}: {count} librdkafka threads" for nodeid, count in _LEAKS)
        print(f"\nKafka clients left alive by tests (close what a test opens):\n{lines}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its tier from its directory, so `-m unit` etc. select a layer;
    order the files as :func:`tests.file_order.file_order` says (a stable sort: a file's
    tests keep their order)."""

    def relative(item: pytest.Item) -> str:
        return Path(str(item.fspath)).relative_to(TESTS_DIR).as_posix()

    for item in items:
        tier = relative(item).split("/")[0]
        if tier in _TIERS:
            item.add_marker(getattr(pytest.mark, tier))
    rank = {name: index for index, name in enumerate(file_order(map(relative, items)))}
    items.sort(key=lambda item: rank[relative(item)])


@pytest.fixture(autouse=True)
def _client_log_level() -> Iterator[None]:
    """Commands run in-process (CliRunner) quiet librdkafka for the rest of the process
    (``kafka_clients.quiet_client_logs``, as a real command's process is): put it back."""
    from streamlearn import kafka_clients

    level = kafka_clients._log_level
    yield
    kafka_clients._log_level = level


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of the session's real Kafka broker."""
    external = os.environ.get("STREAMLEARN_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = embedded_kafka(
        Settings(), port=free_port(), data_dir=tmp_path_factory.mktemp("kafka") / "data"
    )
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    try:
        yield status.bootstrap
    finally:
        # Destroy lingering client handles first, or librdkafka logs reconnect attempts
        # to the stopped broker over the end of the test report.
        gc.collect()
        broker.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``unique_name("orders")`` → ``test-foo-orders-1a2b3c4d``: a name no other test uses."""
    test = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")

    def make(suffix: str = "") -> str:
        return "-".join(part for part in (test, suffix, uuid.uuid4().hex[:8]) if part)

    return make


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Settings:
    """Settings pointing at the session broker, with a topic prefix unique to this test."""
    return Settings(kafka_bootstrap=kafka_bootstrap, topic_prefix=unique_name("") + ".")


@pytest.fixture
def admin(kafka_bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def new_topic(admin: AdminClient, unique_name: Callable[[str], str]) -> Callable[..., str]:
    """Create a uniquely named topic: ``new_topic(partitions=3, config={...})`` → its name."""

    def create(partitions: int = 1, config: dict[str, str] | None = None, suffix: str = "t") -> str:
        name = unique_name(suffix)
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        return name

    return create


@pytest.fixture
def start_registry(kafka_bootstrap: str) -> Iterator[Callable[[str], RegistryProcess]]:
    """``start_registry(prefix)`` → a registry process on its own port; stopped after the test."""
    started: list[RegistryProcess] = []

    def start(topic_prefix: str) -> RegistryProcess:
        registry = RegistryProcess(kafka_bootstrap, topic_prefix)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture(scope="session")
def schema_registry_url(kafka_bootstrap: str) -> Iterator[str]:
    """URL of the session's schema registry: ours (own `_schemas` topic) or the one in
    ``STREAMLEARN_SCHEMA_REGISTRY_URL``."""
    external = os.environ.get("STREAMLEARN_SCHEMA_REGISTRY_URL")
    if external:
        yield external
        return
    registry = RegistryProcess(kafka_bootstrap, f"session-{uuid.uuid4().hex[:8]}.")
    try:
        yield registry.url
    finally:
        registry.stop()


@pytest.fixture
def system_settings(
    kafka_settings: Settings, schema_registry_url: str, admin: AdminClient
) -> Settings:
    """Settings for a whole-system test: the topology applied under this test's prefix and
    the session's registry. Derive per-test variants with ``model_copy(update=...)``."""
    settings = kafka_settings.model_copy(
        update={
            "schema_registry_url": schema_registry_url,
            "model_signing_key": SecretStr("integration-test-signing-key"),
        }
    )
    topology = load_topology(REPO_ROOT / "topology" / "topics.yaml")
    apply_topology(admin, desired_topics(topology, settings.topic_prefix))
    return settings
