"""Schemas sent in requests are not kept: the registry's parse and equivalence caches hold
1,024 and 4,096 entries keyed by schema text, and took every lookup's and compatibility
test's schema, which any caller may send without a writer's password. A parsed 1 MB
schema is ~25 MB of objects, so a few hundred distinct lookups (or a handful of 8 MB ones)
grew the registry past its pod's memory limit."""

from __future__ import annotations

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
        assert service.test_compatibility("orders-value", None, _candidate(index), None) == []
        assert service.test_compatibility("orders-value", "latest", _candidate(index), None) == []
        with pytest.raises(RegistryError, match="40403"):  # not registered
            service.lookup("orders-value", _candidate(index), None, deleted=False)

    ask(0)
    before = _cached_entries()  # the stored version's parse and key, kept on purpose
    for index in range(1, 50):
        ask(index)
    assert _cached_entries() == before


def test_a_lookup_still_finds_an_equivalent_stored_schema() -> None:
    reordered = json.dumps(
        {"fields": [{"type": "long", "name": "a"}], "name": "Order", "type": "record"}
    )
    assert _service().lookup("orders-value", reordered, None, deleted=False)["id"] == 1
