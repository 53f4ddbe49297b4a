"""Schema compatibility levels, checked with Apache Avro's own reader/writer rules.

A new schema is BACKWARD compatible when it can read data written with the previous
schema, FORWARD when the previous schema can read data written with it, FULL when both.
The ``_TRANSITIVE`` forms check against every earlier version instead of the latest only.
"""

from __future__ import annotations

import json
from enum import StrEnum

import fastavro
from avro.schema import Schema
from fastavro.schema import SchemaParseException

from streamlearn.registry.exceptions import invalid_compatibility_level, invalid_schema
from streamlearn.registry.java_rules import java_problem
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


def parse_schema(schema_str: str, *, remember: bool = True) -> Schema:
    """Parse (and validate) an Avro schema; an invalid one is a 422/42201 registry error.

    ``remember=False`` for a schema a request sent (a candidate): it is parsed without
    entering the parse cache, which is for stored versions. Any caller may send lookups and
    compatibility tests, and a parsed 1 MB schema is ~25 MB of objects: cached, a few
    hundred distinct ones grew the registry past its memory limit."""
    parse = parse_avro_schema if remember else parse_avro_schema.__wrapped__
    try:
        return parse(schema_str)
    except InvalidSchemaError as exc:
        raise invalid_schema(str(exc)) from exc


def check_defaults(schema_str: str) -> None:
    """Each field's default fits its type (a union's: its first branch) and every name is
    an Avro name, as the Java parser the Confluent registry uses checks and Apache Avro's
    Python parser does not (registry/java_rules.py): a record written without such a field
    could not be read, and Java clients could not parse the schema. Checked of a schema being
    registered, not of the versions already stored (a subject whose old version has such
    a default can still take a new one)."""
    try:
        schema = json.loads(schema_str)
        fastavro.parse_schema(schema)  # a default of the wrong type
        # Java's rules beyond fastavro's: a union's default fits its first branch, an
        # int's fits 32 bits, items, values and record fields fit theirs, names are names.
        problem = java_problem(schema)
    except SchemaParseException as exc:
        raise invalid_schema(str(exc)) from exc
    except RecursionError:
        raise invalid_schema("nested deeper than the schema parser reads") from None
    if problem is not None:
        raise invalid_schema(problem)


def _problems(reader: Schema, writer: Schema, direction: str) -> list[str]:
    return [f"{direction}: {problem}" for problem in resolution_problems(reader, writer)]


def check(new: str, existing: list[str], level: Level) -> list[str]:
    """Why ``new`` breaks ``level`` against ``existing`` (oldest first); empty when compatible."""
    if level is Level.NONE or not existing:
        return []
    candidate = parse_schema(new, remember=False)
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
