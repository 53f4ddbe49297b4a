"""What Java's Avro parser refuses and Python's took: each of these was registered with a
new id by a new user, and would fail in every Java client that parses it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamlearn.registry.java_rules import java_problem

pytestmark = pytest.mark.unit


def _record(*fields: dict[str, Any], name: str = "R") -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "test", "fields": list(fields)}


ADDRESS = {"type": "record", "name": "Address", "fields": [
    {"name": "city", "type": "string"},
    {"name": "zip", "type": "string", "default": "00000"},
]}  # fmt: skip


@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        (_record({"name": "n", "type": "int", "default": 3_000_000_000}), "default 3000000000"),
        (_record({"name": "l", "type": "long", "default": 2**63}), "does not fit"),
        (_record({"name": "a", "type": {"type": "array", "items": "int"}, "default": ["x"]}),
         "does not fit"),
        (_record({"name": "m", "type": {"type": "map", "values": "int"}, "default": {"k": "v"}}),
         "does not fit"),
        (_record({"name": "home", "type": ADDRESS, "default": {}}), "does not fit"),
        (_record({"name": "work", "type": ADDRESS}, {"name": "again", "type": "Address",
                  "default": {"zip": "1"}}), "'again'"),
        (_record({"name": "u", "type": ["string", "null"], "default": None}), "first type"),
        (_record({"name": "a-b", "type": "int"}), "field name \"a-b\""),
        (_record(name="Bad-Name"), "'test.Bad-Name' is not an Avro name"),
        ({"type": "enum", "name": "E", "symbols": ["A", "B-C"]}, "symbol \"B-C\""),
    ],
)  # fmt: skip
def test_java_refuses(schema: dict[str, Any], complaint: str) -> None:
    problem = java_problem(schema)
    assert problem is not None
    assert complaint in problem, problem


@pytest.mark.parametrize(
    "schema",
    [
        _record({"name": "n", "type": "int", "default": 2**31 - 1}),
        _record({"name": "f", "type": "float", "default": 1}),
        _record({"name": "home", "type": ADDRESS, "default": {"city": "Berlin"}}),
        _record({"name": "home", "type": ADDRESS}, {"name": "w", "type": "test.Address",
                 "default": {"city": "x", "zip": "1"}}),
        _record({"name": "u", "type": ["null", "string"], "default": None}),
        _record({"name": "a", "type": {"type": "array", "items": ["null", "int"]},
                 "default": [None, None]}),
        {"type": "enum", "name": "com.x.E", "symbols": ["A", "_b1"]},
        "int",
    ],
)  # fmt: skip
def test_java_takes(schema: Any) -> None:
    assert java_problem(schema) is None, json.dumps(schema)
