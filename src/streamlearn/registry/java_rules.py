"""What Java's Avro parser (the Confluent registry's) refuses and Python's takes: a field
default that does not fit its type, and a name that is not an Avro name.

A schema with either would be registered here and then fail in every Java client (Kafka
Connect, ksqlDB) that parses it. The rules are Avro's ``Schema.isValidDefault``: text for
string, bytes, enum and fixed; an integral number within 32 (``int``) or 64 bits
(``long``); any number for float and double; an array whose every item fits the items'
type; an object whose every value fits the values' type; for a record, an object whose
every field fits, a field left out taking its own default (none: invalid); for a union,
its first branch's. Names: ``[A-Za-z_][A-Za-z0-9_]*``, dotted parts alike.
"""

from __future__ import annotations

import json
import re
from typing import Any

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
INT_RANGE = (-(2**31), 2**31 - 1)
LONG_RANGE = (-(2**63), 2**63 - 1)


def java_problem(schema: Any) -> str | None:
    """The first thing in ``schema`` (parsed JSON, already valid to Python's parser) that
    Java's parser refuses, described; None when there is none."""
    return _Walk().schema(schema, "")


class _Walk:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        """Named types by full name, as defined (a reference needs its definition first)."""

    def schema(self, node: Any, namespace: str) -> str | None:
        if isinstance(node, list):
            for branch in node:
                if (problem := self.schema(branch, namespace)) is not None:
                    return problem
            return None
        if not isinstance(node, dict):
            return None
        kind = node.get("type")
        if kind in NAMED and isinstance(node.get("name"), str):
            own = node.get("namespace")
            full = _full(node["name"], own if isinstance(own, str) else namespace)
            for part in full.split("."):
                if not NAME.fullmatch(part):
                    return f"{full!r} is not an Avro name ([A-Za-z_][A-Za-z0-9_]*, dotted)"
            self.named[full] = node
            namespace = full.rpartition(".")[0]
            if kind == "enum":
                for symbol in node.get("symbols", []):
                    if not (isinstance(symbol, str) and NAME.fullmatch(symbol)):
                        return f"enum {full}: symbol {json.dumps(symbol)} is not an Avro name"
            if kind in ("record", "error"):
                return self.fields(node, full, namespace)
            return None
        for key in ("items", "values"):
            if (problem := self.schema(node.get(key), namespace)) is not None:
                return problem
        return self.schema(kind, namespace) if isinstance(kind, dict | list) else None

    def fields(self, record: dict[str, Any], full: str, namespace: str) -> str | None:
        for field in record.get("fields", []):
            name = field.get("name")
            if not (isinstance(name, str) and NAME.fullmatch(name)):
                return f"record {full}: field name {json.dumps(name)} is not an Avro name"
            if (problem := self.schema(field.get("type"), namespace)) is not None:
                return problem
            if "default" in field and not self.fits(field["type"], field["default"], namespace):
                return (
                    f"field {name!r}: default {json.dumps(field['default'])} does not fit its "
                    f"type {_shown(field['type'])} (a union's default fits its first type)"
                )
        return None

    def fits(self, schema: Any, value: Any, namespace: str) -> bool:
        """Whether ``value`` is a valid default of ``schema`` (Avro's isValidDefault)."""
        if isinstance(schema, list):
            return bool(schema) and self.fits(schema[0], value, namespace)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _fits_primitive(schema, value)
            defined = self.named.get(_full(schema, namespace))
            return defined is not None and self.fits(defined, value, namespace)
        if not isinstance(schema, dict):
            return False
        kind = schema.get("type")
        if kind in PRIMITIVES:
            return _fits_primitive(kind, value)
        if kind in ("enum", "fixed"):
            return isinstance(value, str)
        if kind == "array":
            items = schema.get("items")
            return isinstance(value, list) and all(self.fits(items, v, namespace) for v in value)
        if kind == "map":
            values = schema.get("values")
            return isinstance(value, dict) and all(
                self.fits(values, v, namespace) for v in value.values()
            )
        if kind in ("record", "error"):
            own = schema.get("namespace")
            name = schema.get("name")
            inner = namespace
            if isinstance(name, str):
                full = _full(name, own if isinstance(own, str) else namespace)
                inner = full.rpartition(".")[0]
            if not isinstance(value, dict):
                return False
            for field in schema.get("fields", []):
                if field.get("name") in value:
                    given = value[field["name"]]
                elif "default" in field:
                    given = field["default"]
                else:
                    return False  # left out, and no default of its own
                if not self.fits(field.get("type"), given, inner):
                    return False
            return True
        return self.fits(kind, value, namespace) if kind is not None else False


def _fits_primitive(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in ("int", "long"):
        low, high = INT_RANGE if kind == "int" else LONG_RANGE
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)  # string, bytes


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _shown(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_shown(s) for s in schema) + "]"
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
