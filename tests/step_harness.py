"""A step driven by hand, for unit tests of one agent's logic: no encoding, no Kafka.

``harness.feed(partition, values)`` runs one batch and returns what the step emitted as
(topic, key, value) with values as dicts; ``harness.restart(step)`` hands the state, as
its changelog would restore it (a JSON round trip of what was written), to a new step.
The whole runtime path, encoding included, is the local runner's
(streamlearn.runtime.local); this harness is for reading one step's decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from streamlearn.runtime.state import PartitionState, decode_value, encode_value
from streamlearn.runtime.step import Record, Send, Step

Emitted = list[tuple[str, str, dict[str, Any]]]


class _Stores:
    def __init__(self, names: Iterable[str], partitions: Iterable[int], count: int) -> None:
        self.count = count
        self.held = {p: {name: PartitionState() for name in names} for p in partitions}

    def of(self, store: str, partition: int) -> MutableMapping[str, Any]:
        return self.held[partition][store]

    def partitions(self) -> frozenset[int]:
        return frozenset(self.held)


class _Emit:
    def __init__(self, into: Emitted, rejected: list[tuple[Record, str, str]]) -> None:
        self.into = into
        self.rejected = rejected

    def to(self, topic: str) -> Send:
        def send(key: str, value: dict[str, Any] | None) -> None:
            self.into.append((topic, key, value))

        return send

    def reject(self, record: Record, reason: str, detail: str) -> None:
        self.rejected.append((record, reason, detail))


class StepHarness:
    def __init__(
        self, step: Step, partitions: Iterable[int] = (0,), count: int = 6, now_ms: int = 0
    ) -> None:
        self.step = step
        self.now_ms = now_ms
        self.state = _Stores(step.stores, partitions, count)
        self.rejected: list[tuple[Record, str, str]] = []
        self._offsets: dict[tuple[str, int], int] = {}
        step.bind(self.state, lambda: self.now_ms)
        for partition in self.state.partitions():
            step.opened(partition)

    def feed(
        self, partition: int, values: Iterable[dict[str, Any]], topic: str | None = None
    ) -> Emitted:
        """One batch of ``values`` on ``topic`` (the step's first input by default)."""
        topic = topic or self.step.inputs[0]
        records = []
        for value in values:
            offset = self._offsets.get((topic, partition), 0)
            self._offsets[(topic, partition)] = offset + 1
            records.append(Record(topic, partition, offset, None, value, None))
        emitted: Emitted = []
        self.step.process(partition, records, _Emit(emitted, self.rejected))
        return emitted

    def replay(self, partition: int, values: Iterable[tuple[int, dict[str, Any]]]) -> Emitted:
        """(offset, value) records read again at their original offsets."""
        topic = self.step.inputs[0]
        records = [Record(topic, partition, o, None, v, None) for o, v in values]
        emitted: Emitted = []
        self.step.process(partition, records, _Emit(emitted, self.rejected))
        return emitted

    def tick(self, partition: int, now_ms: int, read_ms: int | None) -> Emitted:
        emitted: Emitted = []
        self.now_ms = now_ms
        self.step.tick(partition, now_ms, read_ms, _Emit(emitted, self.rejected))
        return emitted

    def store(self, name: str, partition: int = 0) -> dict[str, Any]:
        return dict(self.state.of(name, partition))

    def restart(self, step: Step) -> StepHarness:
        """A new step with this one's state as written (JSON) and its read positions."""
        after = StepHarness.__new__(StepHarness)
        after.step, after.now_ms, after.rejected = step, self.now_ms, []
        after._offsets = dict(self._offsets)
        after.state = _Stores(step.stores, self.state.partitions(), self.state.count)
        for partition, stores in self.state.held.items():
            for name, data in stores.items():
                for key, value in data.items():
                    after.state.held[partition][name].data[key] = decode_value(encode_value(value))
        step.bind(after.state, lambda: after.now_ms)
        for partition in after.state.partitions():
            step.opened(partition)
        return after
