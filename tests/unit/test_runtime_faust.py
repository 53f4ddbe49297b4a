"""The Faust side of the runtime without a broker: the guard on Faust's private members,
the transport and store it registers, record batches, partition state, the checkpoint."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.client import AIOKafkaClient
from aiokafka.consumer.fetcher import Fetcher as AiokafkaFetcher
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import ConsumerRecord
from faust.stores import by_url as store_by_url
from faust.transport import by_url as transport_by_url
from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.consumer import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from streamlearn.runtime import faust_internals
from streamlearn.runtime.checkpoint import Checkpoints
from streamlearn.runtime.exceptions import FaustMismatchError
from streamlearn.runtime.faust_app import BatchingApp
from streamlearn.runtime.faust_guard import (
    FAUST_ATTRIBUTES,
    FAUST_METHODS,
    attribute_problems,
    check_faust_methods,
    method_problems,
)
from streamlearn.runtime.faust_internals import BatchConsumer, BatchTransport
from streamlearn.runtime.faust_store import STORE_URL, PartitionedStore
from streamlearn.runtime.outputs import OutputBatches
from streamlearn.runtime.state import PartitionState
from streamlearn.runtime.worker import BATCH_TRANSPORT_SCHEME

SOURCE = Path(faust_internals.__file__)


@pytest.fixture
def app() -> Iterator[BatchingApp]:
    """An app that is never started; its consumer made (which makes a thread's loop)."""
    app = BatchingApp(
        "runtime-test",
        broker="kafka://127.0.0.1:1",
        broker_consumer=f"{BATCH_TRANSPORT_SCHEME}://127.0.0.1:1",
        store=STORE_URL,
    )
    consumer: Any = app.consumer
    yield app
    consumer._thread.thread_loop.close()


# -- the guard ---------------------------------------------------------------------------


@asynccontextmanager
async def _holders(app: BatchingApp) -> AsyncIterator[dict[str, Any]]:
    """A real object of each kind that holds private attributes the runtime uses."""
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9")
    aiokafka_fetcher = AiokafkaFetcher(client, SubscriptionState())
    aiokafka_consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        yield {
            "consumer": app.consumer,
            "started consumer": app.consumer,
            "fetcher": Fetcher(app=app),
            "aiokafka consumer": aiokafka_consumer,
            "aiokafka fetcher": aiokafka_fetcher,
        }
    finally:
        await aiokafka_consumer.stop()
        await aiokafka_fetcher.close()
        await client.close()


async def test_the_installed_faust_has_every_private_member_the_runtime_uses(
    app: BatchingApp,
) -> None:
    check_faust_methods()
    async with _holders(app) as holders:
        assert set(holders) == set(FAUST_ATTRIBUTES)
        for holder, instance in holders.items():
            assert attribute_problems(holder, instance) == []


@pytest.mark.parametrize(("owner", "member", "kind"), FAUST_METHODS, ids=lambda v: str(v))
def test_the_guard_fails_for_each_method_it_lists(
    owner: type, member: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    defining = next(c for c in owner.__mro__ if member in vars(c))
    monkeypatch.delattr(defining, member)
    assert method_problems() == [f"{owner.__name__}.{member} is missing"]
    with pytest.raises(FaustMismatchError, match=member):
        check_faust_methods()


def test_the_guard_fails_for_a_method_whose_parameters_changed() -> None:
    class Renamed:
        async def _drain_messages(self, fetcher: Any, extra: Any) -> None: ...

        def _to_message(self, tp: Any, record: Any) -> None: ...

    problems = method_problems(
        [
            (Renamed, "_drain_messages", "coroutine(self, fetcher)"),
            (Renamed, "_to_message", "coroutine(self, tp, record)"),
        ]
    )
    assert problems == [
        "Renamed._drain_messages takes ['self', 'fetcher', 'extra'], expected ['self', 'fetcher']",
        "Renamed._to_message is no longer a coroutine",
    ]


@pytest.mark.parametrize(
    ("holder", "name"),
    [(holder, name) for holder, names in FAUST_ATTRIBUTES.items() for name in names],
)
async def test_the_guard_fails_for_each_attribute_it_lists(
    holder: str, name: str, app: BatchingApp
) -> None:
    async with _holders(app) as holders:
        real = holders[holder]
        # An object with every attribute of the real one the guard looks for but ``name``:
        # what a Faust release without it would hand the runtime.
        lacking = SimpleNamespace(
            **{other: getattr(real, other) for other in FAUST_ATTRIBUTES[holder] if other != name}
        )
        assert attribute_problems(holder, real) == []
    assert attribute_problems(holder, lacking) == [f"SimpleNamespace instances have no {name}"]


def _private_names_used(tree: ast.AST) -> set[str]:
    """Private attribute names read or written anywhere in the module."""
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    }


def _own_names(tree: ast.AST) -> set[str]:
    """Private names the module defines itself: its functions and methods (not counting
    its overrides of Faust's) and its classes' declared attributes."""
    faust_classes = (FaustConsumer, faust_aiokafka.Producer)
    names: set[str] = set()
    for node in ast.walk(tree):
        defined = (
            node.name
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and not any(hasattr(owner, node.name) for owner in faust_classes)
            else node.target.id
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            else None
        )
        if defined is not None and defined.startswith("_"):
            names.add(defined)
    return names


def test_the_guard_lists_exactly_the_private_members_the_runtime_touches() -> None:
    tree = ast.parse(SOURCE.read_text())
    listed = {member for _, member, _ in FAUST_METHODS} | {
        name for names in FAUST_ATTRIBUTES.values() for name in names
    }
    used = _private_names_used(tree) - _own_names(tree)
    assert used == listed


def test_no_other_module_touches_a_private_member_of_faust() -> None:
    listed = {member for _, member, _ in FAUST_METHODS} | {
        name for names in FAUST_ATTRIBUTES.values() for name in names
    }
    src = SOURCE.parents[1]
    offenders = []
    for path in src.rglob("*.py"):
        if path == SOURCE:
            continue
        used = _private_names_used(ast.parse(path.read_text())) & listed
        if used and "faust" in path.read_text():
            offenders.append(f"{path.relative_to(src)}: {sorted(used)}")
    assert offenders == []


def test_the_streamlearn_schemes_select_the_batch_transport_and_the_partitioned_store() -> None:
    assert transport_by_url(f"{BATCH_TRANSPORT_SCHEME}://127.0.0.1:9092") is BatchTransport
    assert store_by_url(STORE_URL) is PartitionedStore


# -- record batches ----------------------------------------------------------------------


class _Batch:
    def __init__(self, capacity: int) -> None:
        self.records: list[tuple[Any, Any]] = []
        self.capacity = capacity

    def append(self, *, key: Any, value: Any, timestamp: Any) -> object | None:
        if len(self.records) == self.capacity:
            return None
        self.records.append((key, value))
        return object()


class _FakeProducer:
    """Stands in for BatchProducer: record batches of three; each send completes when the
    test says so (or at once), in the order they were handed over."""

    def __init__(self, manual: bool = False) -> None:
        self.sent: list[tuple[str, int, list[tuple[Any, Any]]]] = []
        self.deliveries: list[asyncio.Future[None]] = []
        self.manual = manual

    def new_batch(self) -> _Batch:
        return _Batch(capacity=3)

    async def send_batch(self, topic: str, partition: int, batch: _Batch) -> Any:
        self.sent.append((topic, partition, batch.records))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.manual:
            delivered.set_result(None)
        self.deliveries.append(delivered)
        return delivered


async def test_outputs_are_grouped_per_partition_in_order_and_split_when_full() -> None:
    producer = _FakeProducer()
    outputs = OutputBatches(producer)  # type: ignore[arg-type]
    for n in range(7):
        outputs.add("t", n % 2, f"k{n}".encode(), b"v")
    assert len(await outputs.send()) == 3  # partition 0: 3 + 1 records, partition 1: 3
    by_partition: dict[int, list[Any]] = {}
    for topic, partition, records in producer.sent:
        assert topic == "t"
        by_partition.setdefault(partition, []).extend(key for key, _ in records)
    assert by_partition == {0: [b"k0", b"k2", b"k4", b"k6"], 1: [b"k1", b"k3", b"k5"]}
    assert outputs.records == 7


# -- partition state ---------------------------------------------------------------------


def test_state_changes_are_each_key_once_with_the_value_it_had_when_taken() -> None:
    state = PartitionState()
    for n in range(5):
        state["user-1"] = [n]
        state[f"event-{n}"] = [n]
    del state["event-0"]
    assert state.get("user-1") == [4]
    assert state.get("missing", "default") == "default"
    changes = state.take_changes()
    assert changes[0] == (b"user-1", b"[4]")
    assert (b"event-0", None) in changes, "a deleted key is a tombstone"
    assert len(changes) == 6
    value = state["user-1"]
    value.append(5)  # changed in place after the changes were taken: not in them
    assert state.take_changes() == [], "taken once"


async def test_a_store_keeps_each_changelog_partition_apart_and_clears_one_reassigned(
    app: BatchingApp,
) -> None:
    table = app.Table("s", partitions=3)
    store = table.data
    assert isinstance(store, PartitionedStore)

    class Event:
        def __init__(self, partition: int, key: bytes, value: bytes | None) -> None:
            self.message = type("M", (), {"partition": partition, "key": key, "value": value})

    store.apply_changelog_batch(
        [Event(0, b"a", b"1"), Event(1, b"a", b"2"), Event(1, b"b", b"3"), Event(1, b"b", None)],
        to_key=None,
        to_value=None,
    )
    assert (dict(store.partition(0)), dict(store.partition(1))) == ({"a": 1}, {"a": 2})
    changelog = table.changelog_topic.get_topic_name()
    await store.on_rebalance(set(), set(), {TP(changelog, 1), TP("other", 0)})
    assert (dict(store.partition(0)), dict(store.partition(1))) == ({"a": 1}, {})
    await store.on_recovery_completed({TP(changelog, 1)}, set())
    assert store.active == frozenset({1})
    assert 0 not in store.held, "state of partitions neither active nor standby is dropped"


# -- the checkpoint ----------------------------------------------------------------------


async def test_checkpoints_of_a_partition_deliver_then_write_state_in_batch_order() -> None:
    producer = _FakeProducer(manual=True)
    checkpoints = Checkpoints()

    def batches(name: str) -> tuple[OutputBatches, OutputBatches]:
        outputs, state = OutputBatches(producer), OutputBatches(producer)  # type: ignore[arg-type]
        outputs.add("out", 0, name.encode(), b"")
        state.add("changelog", 0, name.encode(), b"")
        return outputs, state

    first = checkpoints.submit(0, *batches("first"))
    second = checkpoints.submit(0, *batches("second"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # Both batches' outputs are handed over, in order; no state before its outputs landed.
    assert [(t, records[0][0]) for t, _, records in producer.sent] == [
        ("out", b"first"),
        ("out", b"second"),
    ]
    producer.deliveries[1].set_result(None)  # the second batch's outputs land first...
    await asyncio.sleep(0.01)
    assert len(producer.sent) == 2, "...but its state waits for the first batch's state"
    producer.deliveries[0].set_result(None)
    await asyncio.sleep(0.01)
    assert [t for t, _, _ in producer.sent][2:] == ["changelog"]
    producer.deliveries[2].set_result(None)
    await asyncio.sleep(0.01)
    assert first.done()
    assert not second.done()
    assert [records[0][0] for _, _, records in producer.sent[2:]] == [b"first", b"second"]
    producer.deliveries[3].set_result(None)
    await asyncio.wait_for(second, 1)
    await checkpoints.drain()


async def test_a_failed_delivery_fails_the_partitions_later_checkpoints() -> None:
    producer = _FakeProducer(manual=True)
    checkpoints = Checkpoints()
    outputs, state = OutputBatches(producer), OutputBatches(producer)  # type: ignore[arg-type]
    outputs.add("out", 0, b"k", b"v")
    first = checkpoints.submit(0, outputs, state)
    second = checkpoints.submit(0, OutputBatches(producer), OutputBatches(producer))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    producer.deliveries[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await first
    with pytest.raises(ConnectionError):
        await second


# -- what the batch consumer hands over --------------------------------------------------

INPUT = TP("telemetry.predictions", 0)


def _fetched(*offsets: int) -> dict[TP, list[ConsumerRecord[bytes, bytes]]]:
    return {
        INPUT: [
            ConsumerRecord(INPUT.topic, INPUT.partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
            for offset in offsets
        ]
    }


class _Step:
    """The routing of a batch topic to a step that records what it was handed; it refuses
    (seeks back to) the batches it is told to, as a step whose partition has not opened."""

    def __init__(self, consumer: BatchConsumer, refuse: int = 0) -> None:
        self.consumer = consumer
        self.refuse = refuse
        self.handed: list[list[int]] = []

    def batch_handler_for(self, topic: str) -> Any:
        return self.handle

    async def batches_revoked(self, revoked: set[TP]) -> None: ...

    async def handle(self, tp: TP, messages: list[Any]) -> list[Any] | None:
        if self.refuse:
            self.refuse -= 1
            await self.consumer.seek(tp, messages[0].offset)
            return None
        self.handed.append([message.offset for message in messages])
        return []


@pytest.fixture
def consumer(app: BatchingApp, monkeypatch: pytest.MonkeyPatch) -> BatchConsumer:
    """The app's batch consumer, its broker calls replaced: seeks are recorded and
    nothing was ever committed."""
    consumer: Any = app.consumer
    consumer.sought = []

    async def seek(partition: TP, offset: int) -> None:
        consumer.sought.append(offset)

    async def nothing_committed() -> dict[TP, int | None]:
        return {INPUT: None}

    monkeypatch.setattr(consumer, "_seek", seek)
    monkeypatch.setattr(consumer._thread, "seek_to_committed", nothing_committed)
    monkeypatch.setattr(consumer, "assignment", lambda: {INPUT})
    return consumer


async def test_a_fetch_in_flight_when_a_step_refused_its_batch_is_not_handed_over(
    consumer: Any,
) -> None:
    step = _Step(consumer, refuse=1)
    generation = consumer.app.consumer_generation_id
    await consumer._process_fetch(step, _fetched(0), None, generation)  # refused: seek to 0
    # Fetched while the first batch was handled, so from the position after it.
    await consumer._process_fetch(step, _fetched(1, 2, 3), None, generation)
    await consumer._process_fetch(step, _fetched(0, 1, 2, 3), None, generation)
    assert step.handed == [[0, 1, 2, 3]]
    assert consumer.sought == [0, 0]


async def test_the_first_records_of_a_partition_dropped_at_a_rebalance_are_read_again(
    consumer: Any,
) -> None:
    step = _Step(consumer)
    generation = consumer.app.consumer_generation_id
    consumer.stop_flow()  # a rebalance begins while offset 0 is being fetched
    await consumer._process_fetch(step, _fetched(0), None, generation)
    consumer.app.consumer_generation_id = generation + 1
    await consumer.perform_seek()  # nothing committed: aiokafka leaves the position at 1
    consumer.resume_flow()
    await consumer._process_fetch(step, _fetched(1, 2), None, generation + 1)
    await consumer._process_fetch(step, _fetched(0, 1, 2), None, generation + 1)
    assert step.handed == [[0, 1, 2]]


async def test_a_partition_whose_only_records_were_dropped_at_a_rebalance_reads_them_again(
    consumer: Any,
) -> None:
    """Records fetched while a rebalance's recovery ran are dropped, and aiokafka's position
    stays past them when nothing was committed. Admission (the test above) sends it back
    only when later records arrive: when the dropped records were all the partition had,
    none ever did and the partition was never read. Found in a CI run and then by running
    `test_scaling.py` in a loop: one worker's three partitions of telemetry.events, 90
    records each, fetched once during recovery, then polled at offset 90 for 3 minutes."""
    step = _Step(consumer)
    consumer.app.batch_agent(consumer.app.topic(INPUT.topic))(step.handle)
    generation = consumer.app.consumer_generation_id
    consumer.stop_flow()  # recovery: the partition's only records come back and are dropped
    await consumer._process_fetch(step, _fetched(0, 1, 2), None, generation)
    consumer.app.consumer_generation_id = generation + 1
    await consumer.perform_seek()  # nothing committed: aiokafka leaves the position at 3
    consumer.resume_flow()
    assert consumer.sought == [0], "sent back to the first record, with none to follow"
    await consumer._process_fetch(step, _fetched(0, 1, 2), None, generation + 1)
    assert step.handed == [[0, 1, 2]]


async def test_partition_lags_show_a_partition_that_is_not_read(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Position and lag per batch partition: the partition stalled by the defect above
    showed as position 0 with 90 records after it for minutes, while the worker was ready."""
    step = _Step(consumer)
    consumer.app.batch_agent(consumer.app.topic(INPUT.topic))(step.handle)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 90)
    assert consumer.partition_lags() == {}, "no position yet: not reported"
    await consumer.perform_seek()
    assert consumer.partition_lags() == {INPUT: (0, 90)}
    generation = consumer.app.consumer_generation_id
    await consumer._process_fetch(step, _fetched(0, 1, 2), None, generation)
    assert consumer.partition_lags() == {INPUT: (3, 87)}
    monkeypatch.setattr(consumer, "assignment", lambda: {INPUT, CHANGELOG})
    assert set(consumer.partition_lags()) == {INPUT}, "changelogs are recovery's"


CHANGELOG = TP("streamlearn-agents-preprocess-event-ids-changelog", 3)


class _ChangelogRouting(_Step):
    """Batches for the step's topic; a changelog goes Faust's own way (table recovery)."""

    def batch_handler_for(self, topic: str) -> Any:
        return None if topic == CHANGELOG.topic else self.handle


async def test_changelog_records_dropped_at_a_rebalance_are_read_again(
    consumer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch that began before a rebalance and returned after it, when table recovery had
    sought a taken-over partition's changelog, is dropped as a whole. The changelog's
    position had moved past what it returned: unless sought back, recovery never got
    those records and waited for them for good ("No event received for active tp").
    Found by an integration test of a worker taking over from one stopped with SIGTERM."""
    monkeypatch.setattr(consumer, "assignment", lambda: {INPUT, CHANGELOG})
    generation = consumer.app.consumer_generation_id
    consumer._read_offset[CHANGELOG] = 40  # recovery sought the changelog to 40
    consumer.app.consumer_generation_id = generation + 1  # the rebalance completed
    stale = {
        CHANGELOG: [
            ConsumerRecord(CHANGELOG.topic, CHANGELOG.partition, offset, 0, 0, b"k", b"v",
                           None, 1, 1, [])
            for offset in (40, 41, 42)
        ]
    }  # fmt: skip
    await consumer._process_fetch(_ChangelogRouting(consumer), stale, None, generation)
    assert consumer.sought == [40], "the changelog is read again from what was dropped"
    assert consumer._read_offset[CHANGELOG] == 40, "what recovery already had stays read"


def test_two_steps_of_one_worker_may_not_read_the_same_topic() -> None:
    # One consumer group commits one offset per partition: two steps reading one topic
    # in one worker would commit for each other. The error names both and the way out.
    from streamlearn.agents.monitor import MonitorStep
    from streamlearn.agents.preprocess import PreprocessStep
    from streamlearn.agents.sessionise import SessioniseStep
    from streamlearn.runtime.exceptions import RuntimeConfigurationError
    from streamlearn.runtime.worker import check_one_reader_per_topic

    def steps(*classes: Any) -> list[tuple[str, tuple[str, ...]]]:
        return [(cls.name, cls.inputs) for cls in classes]

    with pytest.raises(RuntimeConfigurationError) as raised:
        check_one_reader_per_topic(steps(PreprocessStep, MonitorStep))
    message = str(raised.value)
    assert "preprocess and monitor both read telemetry.events" in message
    assert "agents run --only monitor" in message
    check_one_reader_per_topic(steps(PreprocessStep, SessioniseStep))


@pytest.mark.parametrize(
    ("hold_ms", "max_wait_ms", "min_bytes"),
    [(None, 200, 1), (500, 500, faust_internals.FETCH_HOLD_MIN_BYTES)],
)
async def test_a_fetch_is_held_200_ms_or_as_long_as_the_worker_s_steps_let_the_broker_hold_it(
    app: BatchingApp,
    monkeypatch: pytest.MonkeyPatch,
    hold_ms: int | None,
    max_wait_ms: int,
    min_bytes: int,
) -> None:
    # aiokafka keeps one fetch in flight per broker: while one that found nothing is held,
    # a partition whose records were just handed over waits for it to return (so 200 ms,
    # not Faust's 1,500). A worker whose steps need no sub-second latency (the monitor)
    # lets the broker gather a batch instead: caught up, the monitor handled ~1 record a
    # batch and spent 27-31 % of a core on the batches' overhead in `up --simulate`.
    consumer: Any = app.consumer
    app.fetch_hold_ms = hold_ms
    client = AIOKafkaClient(bootstrap_servers="127.0.0.1:9")
    fetcher = AiokafkaFetcher(client, SubscriptionState(), fetch_max_wait_ms=1500)
    aiokafka_consumer = SimpleNamespace(_fetcher=fetcher)
    monkeypatch.setattr(consumer._thread, "_ensure_consumer", lambda: aiokafka_consumer)
    try:
        consumer._set_fetch_wait()
        assert (fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes) == (max_wait_ms, min_bytes)
    finally:
        await fetcher.close()
        await client.close()


def test_a_worker_holds_fetches_only_as_long_as_each_of_its_steps_lets_it() -> None:
    from streamlearn.agents.monitor import MonitorStep
    from streamlearn.agents.preprocess import PreprocessStep
    from streamlearn.runtime.worker import fetch_hold_ms

    assert MonitorStep.fetch_hold_ms == 500
    assert fetch_hold_ms([MonitorStep]) == 500
    # The pipeline's agents hold their fetches a tenth of a second; a worker running one
    # beside the monitor holds as long as the shorter of the two.
    assert PreprocessStep.fetch_hold_ms == 100
    assert fetch_hold_ms([MonitorStep, PreprocessStep]) == 100

    class Eager(MonitorStep):
        fetch_hold_ms = None

    # A step that wants its records at once is not held for another's sake.
    assert fetch_hold_ms([MonitorStep, Eager]) is None
    assert fetch_hold_ms([]) is None

    class Zero(MonitorStep):
        fetch_hold_ms = 0

    # Held 0 ms for 1 MiB, an idle worker would fetch in a tight loop: no hold instead.
    assert fetch_hold_ms([Zero]) is None


def test_a_deployment_sets_how_long_its_agent_workers_fetches_are_held() -> None:
    """No setting changed the holds: a deployment that wanted each record handled as it
    came (or larger batches on a busy cluster) had to edit the agents' code. The worker
    passes ``agent_fetch_hold_ms`` (test_feedback_loop.py checks it on a started app)."""
    from streamlearn.agents.monitor import MonitorStep
    from streamlearn.agents.preprocess import PreprocessStep
    from streamlearn.exceptions import ConfigurationError
    from streamlearn.runtime.worker import fetch_hold_ms
    from streamlearn.settings_loading import load_settings

    assert fetch_hold_ms([MonitorStep, PreprocessStep], 250) == 250
    assert fetch_hold_ms([MonitorStep], 0) is None  # no hold at all
    assert fetch_hold_ms([MonitorStep], None) == 500
    assert load_settings(agent_fetch_hold_ms=40).agent_fetch_hold_ms == 40
    assert load_settings().agent_fetch_hold_ms is None
    for wrong in (-1, 60_001):
        with pytest.raises(ConfigurationError, match="agent_fetch_hold_ms"):
            load_settings(agent_fetch_hold_ms=wrong)
