"""How wide a schema the registry parses: the fields of one record and the branches of one
union are bounded, and checked in one pass over the JSON before Apache Avro's parser sees it.

That parser checks a record's field names against a list and a union's branch types
against another, so both take time quadratic in their width: a record of 150,000 fields
(7.5 MB, under the registry's 8 MB request limit) held the event loop for minutes, on a
lookup (``POST /subjects/{subject}``) or a compatibility test, which any caller may send
without a writer's password. At these limits a record is parsed in a fraction of a second.
"""

from __future__ import annotations

from typing import Any

from streamlearn.registry import exceptions as errors

MAX_RECORD_FIELDS = 4_000
"""Fields of one record (Avro sets no bound; wider feature tables are rare)."""
MAX_UNION_BRANCHES = 1_000
"""Branches of one union (a union usually has two: ``null`` and a type)."""


def _union_owner(node: Any) -> str:
    """Where a union is, for the message: its field's name, when it is a field's type."""
    return f" (field {node['name']})" if isinstance(node, dict) and "name" in node else ""


def check_width(schema: Any) -> None:
    """Refuse (422, 42201) a parsed schema JSON with a record or a union wider than the
    limits; walked with a stack, not recursion, so that depth costs nothing here."""
    pending: list[tuple[Any, Any]] = [(schema, None)]
    while pending:
        node, parent = pending.pop()
        if isinstance(node, list):
            if len(node) > MAX_UNION_BRANCHES:
                raise errors.invalid_schema(
                    f"a union of {len(node)} branches{_union_owner(parent)}: the registry "
                    f"takes at most {MAX_UNION_BRANCHES}"
                )
            pending.extend((branch, None) for branch in node)
        elif isinstance(node, dict):
            fields = node.get("fields")
            if node.get("type") == "record" and isinstance(fields, list):
                if len(fields) > MAX_RECORD_FIELDS:
                    raise errors.invalid_schema(
                        f"record {node.get('name')} has {len(fields)} fields: the registry "
                        f"takes at most {MAX_RECORD_FIELDS} in one record"
                    )
                pending.extend((field, None) for field in fields)
            for key in ("type", "items", "values"):
                if key in node:
                    pending.append((node[key], node))
