"""When two schema texts are one schema to the registry.

The Java registry compares schemas parsed, so the order of a JSON object's keys and a
primitive written as ``{"type": "int"}`` instead of ``"int"`` make no new version and no
new id. Schemas are stored as registered (compact JSON, so a registry's earlier records
keep meaning what they meant); they are compared by :func:`equivalence_key`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@lru_cache(maxsize=4096)
def equivalence_key(schema_text: str) -> str:
    """The same string for two schema texts that differ only in object key order or in
    writing a primitive as ``{"type": ...}`` alone (arrays, i.e. fields, symbols and union
    branches, keep their order: it is part of the schema)."""
    try:
        normal = _normal(json.loads(schema_text))
    except (ValueError, RecursionError):
        return schema_text  # not a schema a registry took: equal to itself only
    return json.dumps(normal, sort_keys=True, separators=(",", ":"))


def _normal(node: Any) -> Any:
    if isinstance(node, dict):
        if node.keys() == {"type"} and node["type"] in PRIMITIVES:
            return node["type"]
        # A default is a value, not a schema: kept as it is.
        return {k: v if k == "default" else _normal(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normal(item) for item in node]
    return node
