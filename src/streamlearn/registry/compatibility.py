"""Schema compatibility levels, checked with Apache Avro's own reader/writer rules.

A new schema is BACKWARD compatible when it can read data written with the previous
schema, FORWARD when the previous schema can read data written with it, FULL when both.
The ``_TRANSITIVE`` forms check against every earlier version instead of the latest only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from functools import lru_cache
from typing import Any

import fastavro
from avro.schema import Schema
from fastavro.schema import SchemaParseException

from streamlearn.registry.exceptions import invalid_compatibility_level, invalid_schema
from streamlearn.serde.exceptions import InvalidSchemaError
from streamlearn.serde.resolution import parse_avro_schema, resolution_problems


class Level(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> Level:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                pass
        raise invalid_compatibility_level(value)

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self in (
            Level.BACKWARD,
            Level.BACKWARD_TRANSITIVE,
            Level.FULL,
            Level.FULL_TRANSITIVE,
        )

    @property
    def forward(self) -> bool:
        return self in (Level.FORWARD, Level.FORWARD_TRANSITIVE, Level.FULL, Level.FULL_TRANSITIVE)


DEFAULT_LEVEL = Level.BACKWARD


def parse_schema(schema_str: str) -> Schema:
    """Parse (and validate) an Avro schema; an invalid one is a 422/42201 registry error."""
    try:
        return parse_avro_schema(schema_str)
    except InvalidSchemaError as exc:
        raise invalid_schema(str(exc)) from exc


@lru_cache(maxsize=1024)
def check_defaults(schema_str: str) -> None:
    """Each field's default fits its type (a union's: its first branch), as the Java
    parser the Confluent registry uses checks and Apache Avro's Python parser does not:
    a record written without such a field could not be read. Checked of a schema being
    registered, not of the versions already stored (a subject whose old version has such
    a default can still take a new one)."""
    try:
        schema = json.loads(schema_str)
        fastavro.parse_schema(schema)  # a default of the wrong type
        problem = _union_default_problem(schema)  # fastavro takes any branch's value
    except SchemaParseException as exc:
        raise invalid_schema(str(exc)) from exc
    except RecursionError:
        raise invalid_schema("nested deeper than the schema parser reads") from None
    if problem is not None:
        raise invalid_schema(problem)


_FITS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, str),
    "fixed": lambda v: isinstance(v, str),
    "enum": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "map": lambda v: isinstance(v, dict),
    "record": lambda v: isinstance(v, dict),
}


def _union_default_problem(schema: Any) -> str | None:
    """The first field whose default does not fit its union's first branch (the Avro
    specification's rule), described; None when every one does."""
    if isinstance(schema, list):
        for branch in schema:
            if (problem := _union_default_problem(branch)) is not None:
                return problem
        return None
    if not isinstance(schema, dict):
        return None
    for field in schema.get("fields", []) if schema.get("type") == "record" else []:
        kind = field.get("type")
        if isinstance(kind, list) and kind and "default" in field:
            first = kind[0] if isinstance(kind[0], str) else kind[0].get("type")
            fits = _FITS.get(first) if isinstance(first, str) else None
            if fits is not None and not fits(field["default"]):
                return (
                    f"field {field.get('name')!r}: default {json.dumps(field['default'])} "
                    f"does not fit the union's first type ({first}): list that type first"
                )
        if (problem := _union_default_problem(kind)) is not None:
            return problem
    for key in ("items", "values"):
        if (problem := _union_default_problem(schema.get(key))) is not None:
            return problem
    return None


def _problems(reader: Schema, writer: Schema, direction: str) -> list[str]:
    return [f"{direction}: {problem}" for problem in resolution_problems(reader, writer)]


def check(new: str, existing: list[str], level: Level) -> list[str]:
    """Why ``new`` breaks ``level`` against ``existing`` (oldest first); empty when compatible."""
    if level is Level.NONE or not existing:
        return []
    candidate = parse_schema(new)
    against = existing if level.transitive else existing[-1:]
    messages: list[str] = []
    for index, old_str in enumerate(against):
        old = parse_schema(old_str)
        label = "" if not level.transitive else f" (version index {index})"
        if level.backward:
            messages += _problems(candidate, old, f"new schema cannot read old data{label}")
        if level.forward:
            messages += _problems(old, candidate, f"old schema cannot read new data{label}")
    return messages
