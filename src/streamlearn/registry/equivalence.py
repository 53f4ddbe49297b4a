"""When two schema texts are one schema to the registry.

The Java registry compares schemas parsed, so the order of a JSON object's keys, a
primitive written as ``{"type": "int"}`` instead of ``"int"``, and a name written whole
(``com.x.User``) or as a name and a namespace (given, or inherited from the enclosing
named type) make no new version and no new id. Schemas are stored as registered (compact
JSON, so a registry's earlier records keep meaning what they meant); they are compared by
:func:`equivalence_key`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


NAMED = frozenset({"record", "error", "enum", "fixed"})
KEPT = frozenset({"type", "name", "namespace"})
"""A named type's members set from its full name, not normalised as schemas."""


@lru_cache(maxsize=4096)
def equivalence_key(schema_text: str) -> str:
    """The same string for two schema texts that differ only in object key order, in
    writing a primitive as ``{"type": ...}`` alone, or in how a named type's full name is
    written (arrays, i.e. fields, symbols and union branches, keep their order: it is part
    of the schema)."""
    try:
        normal = _normal(json.loads(schema_text), "")
    except (ValueError, RecursionError, TypeError, AttributeError):
        return schema_text  # not a schema a registry took: equal to itself only
    return json.dumps(normal, sort_keys=True, separators=(",", ":"))


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _normal(node: Any, namespace: str) -> Any:
    """``node`` with each named type's name written whole (its ``namespace`` dropped) and
    each reference to one by its full name; ``namespace`` is the enclosing one."""
    if isinstance(node, str):
        return node if node in PRIMITIVES else _full_name(node, namespace)
    if isinstance(node, list):
        return [_normal(item, namespace) for item in node]
    if not isinstance(node, dict):
        return node
    if node.keys() == {"type"} and node["type"] in PRIMITIVES:
        return node["type"]
    kind = node.get("type")
    if kind in NAMED and isinstance(node.get("name"), str):
        own = node.get("namespace")
        full = _full_name(node["name"], own if isinstance(own, str) else namespace)
        inner = full.rpartition(".")[0]
        normal = {k: _member(k, v, inner) for k, v in node.items() if k not in KEPT}
        normal.update(type=kind, name=full)
        return normal
    if kind in ("array", "map"):  # the keyword stays; its items or values are schemas
        return {k: v if k == "type" else _member(k, v, namespace) for k, v in node.items()}
    return {k: _member(k, v, namespace) for k, v in node.items()}


def _member(key: str, value: Any, namespace: str) -> Any:
    """A member of a schema object: schemas below ``type``, ``items``, ``values`` and
    ``fields`` are normalised; the rest (names, symbols, defaults, docs, aliases, other
    properties) is kept as written."""
    if key in ("type", "items", "values"):
        return _normal(value, namespace)
    if key == "fields" and isinstance(value, list):
        return [
            {k: _member(k, v, namespace) for k, v in field.items()}
            if isinstance(field, dict)
            else field
            for field in value
        ]
    return value
