"""A schema whose shape the Avro parser checks in quadratic time is refused before it is
parsed: a record of 150,000 fields (7.5 MB, under the registry's 8 MB request limit) kept
the registry's event loop busy for minutes, on a lookup any caller may send without a
writer's password."""

from __future__ import annotations

import json

import pytest

from streamlearn.registry.exceptions import RegistryError
from streamlearn.registry.schema_limits import MAX_RECORD_FIELDS, MAX_UNION_BRANCHES
from streamlearn.registry.service import RegistryService


def _record(field_count: int) -> str:
    fields = [{"name": f"f{i}", "type": "long"} for i in range(field_count)]
    return json.dumps({"type": "record", "name": "Wide", "fields": fields})


def _union(branch_count: int) -> str:
    branches = [{"type": "record", "name": f"B{i}", "fields": []} for i in range(branch_count)]
    return json.dumps(
        {"type": "record", "name": "Outer", "fields": [{"name": "u", "type": branches}]}
    )


def test_a_record_with_more_fields_than_the_limit_is_refused_naming_it() -> None:
    with pytest.raises(RegistryError) as refused:
        RegistryService._validated(_record(MAX_RECORD_FIELDS + 1), None)
    assert refused.value.http_status == 422
    assert f"record Wide has {MAX_RECORD_FIELDS + 1} fields" in str(refused.value)
    assert f"at most {MAX_RECORD_FIELDS}" in str(refused.value)


def test_a_record_nested_in_an_array_is_counted_too() -> None:
    inner = json.loads(_record(MAX_RECORD_FIELDS + 1))
    outer = {"type": "array", "items": {"type": "map", "values": inner}}
    with pytest.raises(RegistryError, match="record Wide has"):
        RegistryService._validated(json.dumps(outer), None)


def test_a_union_with_more_branches_than_the_limit_is_refused_naming_its_field() -> None:
    with pytest.raises(RegistryError) as refused:
        RegistryService._validated(_union(MAX_UNION_BRANCHES + 1), None)
    assert refused.value.http_status == 422
    assert f"a union of {MAX_UNION_BRANCHES + 1} branches" in str(refused.value)


def test_schemas_at_the_limits_are_taken() -> None:
    assert json.loads(RegistryService._validated(_record(MAX_RECORD_FIELDS), None))["name"] == (
        "Wide"
    )
    taken = json.loads(RegistryService._validated(_union(MAX_UNION_BRANCHES), None))
    assert len(taken["fields"][0]["type"]) == MAX_UNION_BRANCHES
