"""The batch path's contracts that need no broker: Faust internals, partitioning, tables."""

from __future__ import annotations

from typing import Any

import faust
import pytest
from aiokafka.partitioner import DefaultPartitioner
from faust.transport import by_url

from streamlearn.agents import batch_consumer
from streamlearn.agents.app import BATCH_TRANSPORT_SCHEME
from streamlearn.agents.batch_consumer import BatchTransport, check_faust_internals
from streamlearn.agents.batch_producer import KeyPartitioner, OutputBatches
from streamlearn.agents.batches import BatchTable
from streamlearn.agents.exceptions import AgentConfigurationError


def test_the_installed_faust_has_every_member_the_batch_consumer_uses() -> None:
    check_faust_internals()


def test_a_faust_without_them_is_refused_with_the_member_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Renamed:
        async def _drain_messages(self, fetcher: Any, extra: Any) -> None: ...

    members = (
        (Renamed, "_drain_messages", "coroutine(self, fetcher)"),
        (Renamed, "_wait_next_records", "coroutine(self, timeout)"),
    )
    monkeypatch.setattr(batch_consumer, "FAUST_MEMBERS_USED", members)
    monkeypatch.setattr(batch_consumer, "FAUST_INSTANCE_STATE", ("_no_such_state",))
    with pytest.raises(AgentConfigurationError) as raised:
        check_faust_internals()
    message = str(raised.value)
    assert "Renamed._drain_messages takes ['self', 'fetcher', 'extra']" in message
    assert "Renamed._wait_next_records is missing" in message
    assert "_no_such_state" in message


def test_the_streamlearn_scheme_selects_the_batch_transport() -> None:
    assert by_url(f"{BATCH_TRANSPORT_SCHEME}://127.0.0.1:9092") is BatchTransport


@pytest.mark.parametrize("partitions", [1, 6, 13])
def test_keys_land_where_kafkas_default_partitioner_puts_them(partitions: int) -> None:
    by_key = KeyPartitioner(partitions, {})
    reference = DefaultPartitioner()
    for n in range(500):
        key = f"user-{n}".encode()
        assert by_key(key) == reference(key, list(range(partitions)), [])
    assert 0 <= by_key(None) < partitions


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
    """Stands in for BatchProducer: record batches of three, sends recorded in order."""

    def __init__(self, partitions: int = 6) -> None:
        self.sent: list[tuple[str, int, list[tuple[Any, Any]]]] = []
        self.partitions = partitions

    def new_batch(self) -> _Batch:
        return _Batch(capacity=3)

    async def send_batch(self, topic: str, partition: int, batch: _Batch) -> Any:
        self.sent.append((topic, partition, batch.records))
        return None

    async def partitioner(self, topic: str) -> KeyPartitioner:
        return KeyPartitioner(self.partitions, {})


async def test_outputs_are_grouped_per_partition_in_order_and_split_when_full() -> None:
    producer = _FakeProducer()
    outputs = OutputBatches(producer)  # type: ignore[arg-type]
    for n in range(7):
        outputs.add("t", f"k{n}".encode(), b"v", partition=n % 2)
    assert len(await outputs.send()) == 3  # partition 0: 3 + 1 records, partition 1: 3
    by_partition: dict[int, list[Any]] = {}
    for topic, partition, records in producer.sent:
        assert topic == "t"
        by_partition.setdefault(partition, []).extend(key for key, _ in records)
    assert by_partition == {0: [b"k0", b"k2", b"k4", b"k6"], 1: [b"k1", b"k3", b"k5"]}
    assert outputs.records == 7


def _table(use_partitioner: bool) -> Any:
    app = faust.App("batch-table-test", broker="kafka://127.0.0.1:1", store="memory://")
    return app.Table("state", partitions=6, key_type=str, use_partitioner=use_partitioner)


async def test_a_batch_writes_each_changed_key_once_with_its_final_value() -> None:
    table = BatchTable(_table(use_partitioner=False))
    for n in range(5):
        table["user-1"] = [n]
        table[f"event-{n}"] = [n]
    del table["event-0"]
    assert table.get("user-1") == [4]
    assert table.get("missing", "default") == "default"
    producer = _FakeProducer()
    outputs = OutputBatches(producer)  # type: ignore[arg-type]
    assert await table.flush(outputs, partition=4) == 6
    await outputs.send()
    written = {key: value for _, _, records in producer.sent for key, value in records}
    assert {partition for _, partition, _ in producer.sent} == {4}
    assert written[b'"user-1"'] == b"[4]"
    assert written[b'"event-0"'] is None, "a deleted key is a tombstone"
    assert len(written) == 6
    assert await table.flush(OutputBatches(producer), partition=4) == 0, "flushed once"  # type: ignore[arg-type]


async def test_key_partitioned_state_follows_the_raw_key_not_its_json() -> None:
    """Faust's JSON key codec writes ``"user"`` with quotes; the state must still land in
    the partition of the user's events (murmur2 of the user id's own bytes)."""
    table = BatchTable(_table(use_partitioner=True))
    users = [f"human-{n}" for n in range(40)]
    for user in users:
        table[user] = {"open": []}
    producer = _FakeProducer()
    outputs = OutputBatches(producer)  # type: ignore[arg-type]
    await table.flush(outputs, partition=None)
    await outputs.send()
    events_partition = KeyPartitioner(6, {})
    placed = {key: partition for _, partition, records in producer.sent for key, _ in records}
    assert placed == {f'"{user}"'.encode(): events_partition(user.encode()) for user in users}


def test_batch_tables_need_the_memory_store() -> None:
    app = faust.App("batch-table-rocks", broker="kafka://127.0.0.1:1", store="rocksdb://")
    with pytest.raises(AgentConfigurationError, match="memory://"):
        BatchTable(app.Table("state", partitions=6, key_type=str))
