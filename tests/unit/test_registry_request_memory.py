"""Schemas sent in requests are not kept: the registry's parse and equivalence caches hold
1,024 and 4,096 entries keyed by schema text, and took every lookup's and compatibility
test's schema, which any caller may send without a writer's password. A parsed 1 MB
schema is ~25 MB of objects, so a few hundred distinct lookups (or a handful of 8 MB ones)
grew the registry past its pod's memory limit."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any, cast

import pytest

from streamlearn.registry.compatibility import Level
from streamlearn.registry.equivalence import equivalence_key
from streamlearn.registry.exceptions import RegistryError
from streamlearn.registry.service import RegistryService
from streamlearn.registry.state import RegistryState, SchemaVersion
from streamlearn.serde.resolution import parse_avro_schema

STORED = json.dumps({"type": "record", "name": "Order", "fields": [{"name": "a", "type": "long"}]})


def _service() -> RegistryService:
    state = RegistryState(global_level=Level.FULL)
    state.versions["orders-value"] = {1: SchemaVersion("orders-value", 1, 1, STORED)}
    state.schemas_by_id[1] = STORED
    state.ids_by_schema[STORED] = 1
    # The service reads only its log's state here (the log is Kafka's, not needed for reads).
    return RegistryService(cast(Any, SimpleNamespace(state=state)))


def _candidate(index: int) -> str:
    fields = [{"name": "a", "type": "long"}, {"name": f"f{index}", "type": "long", "default": 0}]
    return json.dumps({"type": "record", "name": "Order", "fields": fields})


def _cached_entries() -> int:
    return parse_avro_schema.cache_info().currsize + equivalence_key.cache_info().currsize


def test_lookups_and_compatibility_tests_leave_no_schema_in_the_caches() -> None:
    service = _service()

    def ask(index: int) -> None:
        candidate = _candidate(index)
        assert asyncio.run(service.test_compatibility("orders-value", None, candidate, None)) == []
        latest = service.test_compatibility("orders-value", "latest", candidate, None)
        assert asyncio.run(latest) == []
        with pytest.raises(RegistryError, match="40403"):  # not registered
            asyncio.run(service.lookup("orders-value", candidate, None, deleted=False))

    ask(0)
    before = _cached_entries()  # the stored version's parse and key, kept on purpose
    for index in range(1, 50):
        ask(index)
    assert _cached_entries() == before


def test_a_lookup_still_finds_an_equivalent_stored_schema() -> None:
    reordered = json.dumps(
        {"fields": [{"type": "long", "name": "a"}], "name": "Order", "type": "record"}
    )
    found = asyncio.run(_service().lookup("orders-value", reordered, None, deleted=False))
    assert found["id"] == 1


def test_the_event_loop_runs_on_while_a_large_schema_is_parsed() -> None:
    """Parsing a schema of 300 records of 100 fields (1 MB) takes a CPU-bound while; the
    registry answered nothing else (``/healthz`` included) until it was done."""
    records = [
        {
            "name": f"g{j}",
            "type": {
                "type": "record",
                "name": f"M{j}",
                "fields": [{"name": f"f{i}", "type": "long"} for i in range(100)],
            },
        }
        for j in range(300)
    ]
    large = json.dumps({"type": "record", "name": "Large", "fields": records})

    async def ticks_during_lookup() -> int:
        ticks = 0
        looking_up = True

        async def tick() -> None:
            nonlocal ticks
            while looking_up:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        ticks = 0
        with pytest.raises(RegistryError, match="40403"):
            await _service().lookup("orders-value", large, None, deleted=False)
        looking_up = False
        await ticker
        return ticks

    # The ticker ran beside the parse (a blocking parse leaves it at most the one turn
    # it takes when the lookup returns).
    assert asyncio.run(ticks_during_lookup()) > 1
