"""Avro schema resolution rules (can a reader schema read a writer's data?), from Apache Avro.

fastavro resolves records but has no compatibility checker; Apache Avro's Python package
implements the specification's reader/writer rules, so both the serde (checking a writer
once per schema id) and the registry (compatibility levels) use it through this module.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.errors import AvroException
from avro.schema import Schema
from avro.schema import parse as parse_avro

from streamlearn.serde.exceptions import InvalidSchemaError
from streamlearn.serde.schema_shape import missing_attribute


def _missing_attribute(schema_json: str) -> str | None:
    try:
        return missing_attribute(json.loads(schema_json))
    except (ValueError, RecursionError):
        return None


@lru_cache(maxsize=1024)
def parse_avro_schema(schema_json: str) -> Schema:
    """A parsed, validated Avro schema; :class:`InvalidSchemaError` says what is wrong."""
    try:
        return parse_avro(schema_json)
    except (AvroException, ValueError, TypeError, KeyError) as exc:
        # A missing attribute, said in words rather than the parser's (schema_shape.py).
        missing = _missing_attribute(schema_json)
        raise InvalidSchemaError(missing or str(exc) or type(exc).__name__) from exc
    except RecursionError:
        raise InvalidSchemaError("nested deeper than the schema parser reads") from None


def field_path(schema: Any, location: str) -> str:
    """``/fields/2/type`` in a schema's JSON → ``user_id`` (field names, dotted), for people."""
    names: list[str] = []
    node = schema
    parts = [p for p in location.split("/") if p]
    for index, part in enumerate(parts):
        if part == "fields" and index + 1 < len(parts) and isinstance(node, dict):
            try:
                node = node["fields"][int(parts[index + 1])]
            except (KeyError, IndexError, ValueError):
                break
            names.append(str(node.get("name")))
        elif part in ("type", "items", "values") and isinstance(node, dict):
            node = node.get(part)
        elif part.isdigit() and isinstance(node, list) and int(part) < len(node):
            node = node[int(part)]
    return ".".join(names) or "(top level)"


def resolution_problems(reader: Schema, writer: Schema) -> list[str]:
    """Why data written with ``writer`` cannot be read as ``reader``; empty when it can."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    reader_json = reader.to_json()
    # Each kind and field once: a kind per field and the fields again as the messages
    # (Avro's are often the field's name alone) made a 409 hard to read.
    kinds = sorted({i.name.lower() for i in result.incompatibilities}) or ["incompatible"]
    fields = sorted({field_path(reader_json, loc) for loc in result.locations if loc != "/"})
    where = ", ".join(fields) or "(top level)"
    named = set(fields) | {field.rsplit(".", 1)[-1] for field in fields}
    details = "; ".join(sorted(m for m in result.messages if m not in named))
    return [f"{', '.join(kinds)} at {where}" + (f": {details}" if details else "")]
