"""Avro schema resolution rules (can a reader schema read a writer's data?), from Apache Avro.

fastavro resolves records but has no compatibility checker; Apache Avro's Python package
implements the specification's reader/writer rules, so both the serde (checking a writer
once per schema id) and the registry (compatibility levels) use it through this module.
"""

from __future__ import annotations

from functools import lru_cache

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.errors import AvroException
from avro.schema import Schema
from avro.schema import parse as parse_avro

from streamlearn.serde.exceptions import InvalidSchemaError


@lru_cache(maxsize=1024)
def parse_avro_schema(schema_json: str) -> Schema:
    """A parsed, validated Avro schema; :class:`InvalidSchemaError` says what is wrong."""
    try:
        return parse_avro(schema_json)
    except (AvroException, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchemaError(str(exc) or type(exc).__name__) from exc


def resolution_problems(reader: Schema, writer: Schema) -> list[str]:
    """Why data written with ``writer`` cannot be read as ``reader``; empty when it can."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted(i.name for i in result.incompatibilities) or ["INCOMPATIBLE"]
    where = ", ".join(sorted(result.locations)) or "/"
    details = "; ".join(sorted(result.messages))
    return [f"{', '.join(kinds)} at {where}: {details}"]
