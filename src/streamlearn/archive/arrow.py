"""Avro schemas as Arrow types, for Parquet files, and values both ways.

pyarrow reads no Avro schema, so this module maps one (a writer schema, named types
expanded) onto Arrow types: records → structs, arrays → lists, maps → maps of strings,
enums → strings, fixed → fixed-size binary, ``["null", X]`` → a nullable X, logical types
→ Arrow's (timestamps in UTC, dates, times, decimals; UUIDs as strings). A union of
several non-null types becomes a struct with one field per branch (named after the
branch's type) of which one is set: queryable, and the branch is not lost. Recursive
schemas have no Arrow equivalent and are refused (archive them as Avro).

Values go in as the archive decodes them (fastavro's form; UUIDs become strings) and come
out of a Parquet file in the form
fastavro gives for the same schema (aware UTC datetimes, UUIDs, dicts for maps), so
:func:`~streamlearn.archive.reader.read_archive` yields the same values from both formats.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import fastavro
import pyarrow as pa
from fastavro.validation import validate

from streamlearn.archive.exceptions import ArchiveError

Convert = Callable[[Any], Any]

_PRIMITIVES: dict[str, pa.DataType] = {
    "null": pa.null(),
    "boolean": pa.bool_(),
    "int": pa.int32(),
    "long": pa.int64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "bytes": pa.binary(),
    "string": pa.string(),
}


def expand(schema: Any) -> Any:
    """``schema`` with every reference to a named type replaced by its definition."""
    try:
        return fastavro.parse_schema(schema, expand=True, _write_hint=False)
    except RecursionError as exc:
        raise ArchiveError("a recursive Avro schema cannot be written as Parquet") from exc


def branch_name(schema: Any) -> str:
    """The struct field naming a union branch: its type, or its name for a named type."""
    if isinstance(schema, str):
        return schema.rsplit(".", 1)[-1]
    if isinstance(schema, dict):
        if schema.get("type") in ("record", "enum", "fixed"):
            return str(schema["name"]).rsplit(".", 1)[-1]
        return str(schema.get("logicalType") or schema["type"]).replace("-", "_")
    return "union"


def _non_null(branches: list[Any]) -> list[Any]:
    return [b for b in branches if b != "null"]


def arrow_type(schema: Any, _depth: int = 0) -> pa.DataType:
    """The Arrow type of an expanded Avro schema."""
    if _depth > 64:
        raise ArchiveError("Avro schema nested too deeply (recursive?) to write as Parquet")
    depth = _depth + 1
    if isinstance(schema, str):
        if schema not in _PRIMITIVES:
            # expand() inlines every named type except one used inside itself.
            raise ArchiveError(
                f"{schema!r} is used inside itself: a recursive Avro schema cannot be "
                "written as Parquet (archive the topic as Avro)"
            )
        return _PRIMITIVES[schema]
    if isinstance(schema, list):
        branches = _non_null(schema)
        if not branches:
            return pa.null()
        if len(branches) == 1:
            return arrow_type(branches[0], depth)
        return pa.struct([pa.field(branch_name(b), arrow_type(b, depth)) for b in branches])
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "local-timestamp-millis"):
        return pa.timestamp("ms", tz="UTC" if logical == "timestamp-millis" else None)
    if logical in ("timestamp-micros", "local-timestamp-micros"):
        return pa.timestamp("us", tz="UTC" if logical == "timestamp-micros" else None)
    if logical == "date" and kind == "int":
        return pa.date32()
    if logical == "time-millis" and kind == "int":
        return pa.time32("ms")
    if logical == "time-micros" and kind == "long":
        return pa.time64("us")
    if logical == "decimal" and kind in ("bytes", "fixed"):
        precision, scale = int(schema["precision"]), int(schema.get("scale", 0))
        if precision <= 38:
            return pa.decimal128(precision, scale)
        return pa.decimal256(precision, scale)
    if kind == "record":
        return pa.struct(
            [pa.field(f["name"], arrow_type(f["type"], depth)) for f in schema["fields"]]
        )
    if kind == "enum":
        return pa.string()
    if kind == "fixed":
        return pa.binary(int(schema["size"]))
    if kind == "array":
        return pa.list_(arrow_type(schema["items"], depth))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(schema["values"], depth))
    return arrow_type(kind, depth)


def _needs_conversion(schema: Any) -> bool:
    """Whether a decoded value of ``schema`` holds something pyarrow does not take as it
    is: a union of several types, or a UUID."""
    if isinstance(schema, list):
        return len(_non_null(schema)) > 1 or any(_needs_conversion(b) for b in schema)
    if not isinstance(schema, dict):
        return False
    kind = schema["type"]
    if schema.get("logicalType") == "uuid" and kind == "string":
        return True
    if kind == "record":
        return any(_needs_conversion(f["type"]) for f in schema["fields"])
    if kind == "array":
        return _needs_conversion(schema["items"])
    if kind == "map":
        return _needs_conversion(schema["values"])
    return False


def to_arrow(schema: Any) -> Convert | None:
    """A function turning a decoded value into what pyarrow takes for ``arrow_type``, or
    None when the value is already that (most schemas: only unions of several types and
    UUIDs need it)."""
    if not _needs_conversion(schema):
        return None
    if isinstance(schema, list):
        branches = _non_null(schema)
        if len(branches) == 1:
            inner = to_arrow(branches[0])
            return None if inner is None else (lambda v: None if v is None else inner(v))
        named = [
            (branch_name(b), fastavro.parse_schema(b), to_arrow(b) or _identity) for b in branches
        ]

        def union(value: Any) -> Any:
            if value is None:
                return None
            for name, branch, convert in named:
                if validate(value, branch, raise_errors=False):
                    return {name: convert(value)}
            raise ArchiveError(f"value {value!r} matches no branch of {schema}")

        return union
    kind = schema["type"]
    if kind == "string":  # a UUID
        return lambda v: None if v is None else str(v)
    if kind == "record":
        # Only the fields that need it: the rest of the dict is taken as it is.
        converted = [(f["name"], c) for f in schema["fields"] if (c := to_arrow(f["type"]))]

        def record(value: Any) -> Any:
            if value is None:
                return None
            value = dict(value)
            for name, convert in converted:
                value[name] = convert(value[name])
            return value

        return record
    if kind == "array":
        items = to_arrow(schema["items"]) or _identity
        return lambda v: None if v is None else [items(x) for x in v]
    values = to_arrow(schema["values"]) or _identity
    return lambda v: None if v is None else {k: values(x) for k, x in v.items()}


def _identity(value: Any) -> Any:
    return value


def from_arrow(schema: Any) -> Convert:
    """A function turning a value pyarrow read (``to_pylist``) back into fastavro's form
    of the same schema."""
    if isinstance(schema, str):
        return _identity
    if isinstance(schema, list):
        branches = _non_null(schema)
        if not branches:
            return _identity
        if len(branches) == 1:
            inner = from_arrow(branches[0])
            return lambda v: None if v is None else inner(v)
        named = [(branch_name(b), from_arrow(b)) for b in branches]

        def union(value: Any) -> Any:
            if value is None:
                return None
            for name, convert in named:
                if value.get(name) is not None:
                    return convert(value[name])
            return None

        return union
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return lambda v: None if v is None else _utc(v)
    if logical == "uuid" and kind == "string":
        return lambda v: None if v is None else uuid.UUID(v)
    if kind == "record":
        fields = [(f["name"], from_arrow(f["type"])) for f in schema["fields"]]
        return lambda v: None if v is None else {n: c(v[n]) for n, c in fields}
    if kind == "array":
        items = from_arrow(schema["items"])
        return lambda v: None if v is None else [items(x) for x in v]
    if kind == "map":
        values = from_arrow(schema["values"])
        return lambda v: None if v is None else {k: values(x) for k, x in v}
    return _identity


def _utc(value: datetime) -> datetime:
    """pyarrow's UTC datetimes carry zoneinfo's UTC; fastavro's carry datetime.UTC."""
    return value.replace(tzinfo=UTC)
