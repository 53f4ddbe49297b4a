"""Before a batch is decoded, the writer schemas it needs are looked up; while the
registry does not answer, the batch waits (and the worker says so), never fails."""

from __future__ import annotations

import asyncio
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from streamlearn.runtime import registry_wait
from streamlearn.runtime.records import StepInputs
from streamlearn.serde import AvroSerde, InMemoryRegistry, RegistryUnavailableError, frame
from streamlearn.serde.schemas import load_schema

pytestmark = pytest.mark.unit


class FlakyRegistry(InMemoryRegistry):
    """Unreachable for the first ``failures`` lookups of a schema by id."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.asked: list[int] = []

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        self.asked.append(schema_id)
        if self.failures > 0:
            self.failures -= 1
            raise RegistryUnavailableError("registry http://r unreachable: refused")
        return super().schema_by_id(schema_id)


def _message(value: bytes | None) -> Any:
    return SimpleNamespace(offset=0, key=None, value=value, timestamp=None)


def _inputs(registry: InMemoryRegistry) -> tuple[StepInputs, int]:
    serde = AvroSerde.for_topic(registry, "t", "Feedback")
    own = serde.schema_id
    return StepInputs({"t": serde}, {"t": "t"}), own


def test_only_framed_writers_the_serde_has_not_seen_are_looked_up() -> None:
    registry = InMemoryRegistry()
    inputs, own = _inputs(registry)
    other = registry.register("other-value", '{"type": "string"}')
    messages = [
        _message(frame(own, b"\x02")),
        _message(frame(other, b"\x02")),
        _message(frame(other, b"")),  # header only: rejected, its id looked up all the same
        _message(None),
        _message(b"\x01\x00\x00\x00\x09body"),  # bad magic byte: rejected without asking
        _message(b"\x00\x00"),  # shorter than a header: likewise
        _message(frame(12345, b"\x02")),
    ]
    assert inputs.unseen_writers("t", messages) == sorted({other, 12345})
    inputs.look_up_writer("t", other)  # not resolvable as a Feedback: left to decode
    inputs.look_up_writer("t", 12345)  # not registered: likewise
    assert inputs.unseen_writers("t", messages) == sorted({other, 12345})


def test_a_batch_waits_for_the_registry_then_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(registry_wait, "FIRST_RETRY_S", 0.001)
    monkeypatch.setattr(registry_wait, "MAX_RETRY_S", 0.002)
    registry = FlakyRegistry(failures=0)
    inputs, _ = _inputs(registry)
    schema = load_schema("Feedback")  # a newer writer: one more optional field
    extra = {"name": "extra", "type": ["null", "string"], "default": None}
    newer = registry.register(
        "t-value", json.dumps(dict(schema, fields=[*schema["fields"], extra]))
    )
    registry.failures = 5
    app = SimpleNamespace(should_stop=False, waiting_for=None)
    seen_waiting: list[str | None] = []

    async def run() -> bool:
        async def watch() -> None:
            while True:
                seen_waiting.append(app.waiting_for)
                await asyncio.sleep(0.001)

        watcher = asyncio.ensure_future(watch())
        try:
            return await registry_wait.look_up_writers(
                inputs,
                "t",
                [_message(frame(newer, b""))],
                app,  # type: ignore[arg-type]
            )
        finally:
            watcher.cancel()

    with caplog.at_level(logging.WARNING, logger=registry_wait.__name__):
        assert asyncio.run(run()) is True
    assert registry.asked == [newer] * 6
    assert f"the schema registry, for writer schema id {newer}" in seen_waiting
    assert app.waiting_for is None
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages  # once waiting (not per retry), once going on
    assert "nothing is skipped" in messages[0]
    assert not inputs.unseen_writers("t", [_message(frame(newer, b""))])


def test_a_stopping_worker_stops_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_wait, "FIRST_RETRY_S", 0.001)
    registry = FlakyRegistry(failures=10**6)
    inputs, _ = _inputs(registry)
    app = SimpleNamespace(should_stop=False, waiting_for=None)

    async def run() -> bool:
        async def stop_soon() -> None:
            await asyncio.sleep(0.05)
            app.should_stop = True

        stopper = asyncio.ensure_future(stop_soon())
        handled = await registry_wait.look_up_writers(
            inputs,
            "t",
            [_message(frame(999, b""))],
            app,  # type: ignore[arg-type]
        )
        await stopper
        return handled

    assert asyncio.run(run()) is False
