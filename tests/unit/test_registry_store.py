"""The registry's writes to its topic, without a broker: what a client is told when Kafka
does not confirm one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamlearn.registry import store
from streamlearn.registry.exceptions import RegistryError
from streamlearn.registry.store import SchemaLog
from streamlearn.settings import Settings

pytestmark = pytest.mark.unit


class SilentProducer:
    """A producer whose broker never answers: the record waits in its buffer."""

    async def send_and_wait(self, topic: str, **record: Any) -> Any:
        await asyncio.Event().wait()


def test_a_write_kafka_did_not_confirm_is_said_as_one_that_may_still_happen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: with the broker stopped a register answered "Operation timed
    out ... Kafka did not confirm within 10s" and `schemas register` said it failed; when
    the broker came back, the subject was there on every replica: the producer had kept
    the record and sent it. A timed-out write is not a failed one: the answer says it may
    still be applied, and that repeating the request is safe."""
    monkeypatch.setattr(store, "WRITE_TIMEOUT_S", 0.05)
    schema_log = SchemaLog(Settings(kafka_bootstrap="127.0.0.1:1"), "_schemas")
    schema_log._producer = SilentProducer()  # type: ignore[assignment]
    with pytest.raises(RegistryError) as refused:
        asyncio.run(schema_log.write([(b"key", b"value")]))
    assert refused.value.error_code == 50002
    message = refused.value.message
    assert "may still be applied" in message
    assert "repeating the request is safe" in message
