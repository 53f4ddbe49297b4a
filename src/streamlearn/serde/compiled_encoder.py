"""Avro encoders compiled once per schema: Python source generated from the schema.

The encoding counterpart of :mod:`streamlearn.serde.compiled`. ``fastavro``'s writer walks
the schema for every record and converts logical types through generic hooks; for the
agents' outputs (a ``CleanEvent`` per telemetry event) that was the largest single cost
after decoding (docs/agents.md, "Performance"). The code :func:`compile_encoder`
generates writes the same bytes with the schema unrolled into straight-line code.

It is an accelerator, never a second definition of the format: for every record it
accepts it returns exactly the bytes ``fastavro.schemaless_writer`` writes (unit-tested
against fastavro on every schema of the topology), and it accepts only plainly typed
values: ``str`` for strings, ``int`` within range for ints and longs, ``float`` for
doubles, ``dict`` and ``list`` for maps, records and arrays, aware ``datetime`` or ``int``
for timestamps, ``UUID`` or ``str`` for UUIDs. Anything else (a missing field fastavro
would fill with its default, a naive datetime, a bool where a long is expected, a value
fastavro rejects) raises, and the caller encodes the record with fastavro, which writes or
explains it as it always has. A union of plain primitive types (a features map's values:
null, boolean, long, double, string) is dispatched on the value's exact class, each class to
the branch fastavro itself writes it to (asked of fastavro, with probe values, when the
encoder is made; a class fastavro would split between branches by value, an int between
``int`` and ``long``, is declined). Schemas with shapes it does not handle (named type
references, other unions, fixed, decimals, dates) get no encoder.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import fastavro

Encoder = Callable[[Any], bytes]
"""``encode(record)``: the Avro body of ``record`` (after ``prefix``, if one was given)."""

_PRIMITIVE_CHECKS = {
    "string": "type({v}) is not str",
    "bytes": "type({v}) is not bytes",
    "long": "type({v}) is not int or not -9223372036854775808 <= {v} <= 9223372036854775807",
    "int": "type({v}) is not int or not -2147483648 <= {v} <= 2147483647",
}


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_UNION_PROBES: tuple[tuple[str, tuple[Any, ...]], ...] = (
    # Most common first (the features maps' values). Several probes of a class must all
    # land in one branch (an int, a long) or values of that class are declined.
    ("float", (1.5,)),
    ("str", ("a",)),
    ("NoneType", (None,)),
    ("bool", (True, False)),
    ("int", (0, 2**40, -(2**40), 2**63 - 1, -(2**63))),
    ("bytes", (b"a",)),
)


def _fastavro_branch(branches: list[str], probes: tuple[Any, ...]) -> int | None:
    """The branch of ``branches`` fastavro writes every value of ``probes`` to, or None."""
    chosen: set[int] = set()
    for probe in probes:
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, branches, probe)
        except (TypeError, ValueError, OverflowError, AttributeError):
            return None
        chosen.add(buffer.getvalue()[0] >> 1)  # the zigzag index: one byte (< 64 branches)
    return chosen.pop() if len(chosen) == 1 else None


class DeclinedRecordError(ValueError):
    """The compiled encoder does not take the record as plainly typed (fastavro decides)."""


class UnsupportedSchemaError(Exception):
    """A schema shape the generator does not handle."""


def _declined() -> DeclinedRecordError:
    return DeclinedRecordError("not a plainly typed record")


def _varint(out: bytearray, value: int) -> None:
    """The zigzag varint of a long known to be in range."""
    value = (value << 1) ^ (value >> 63)
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _Generator:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {
            "_declined": _declined, "_varint": _varint, "_datetime": datetime,
            "_UUID": UUID, "_EPOCH": datetime(1970, 1, 1, tzinfo=UTC),
            "_double": struct.Struct("<d").pack, "_float": struct.Struct("<f").pack,
        }  # fmt: skip
        self.names = 0

    def fresh(self, stem: str) -> str:
        self.names += 1
        return f"{stem}{self.names}"

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def value(self, indent: int, schema: Any, v: str) -> None:
        """Lines writing the value in local ``v`` of type ``schema``."""
        if isinstance(schema, list):
            self.union(indent, schema, v)
            return
        kind = schema if isinstance(schema, str) else schema.get("type")
        logical = None if isinstance(schema, str) else schema.get("logicalType")
        if logical is not None:
            self.logical(indent, kind, logical, v)
        if kind in ("string", "bytes"):
            self.emit(indent, f"if {_PRIMITIVE_CHECKS[kind].format(v=v)}:")
            self.emit(indent + 1, "raise _declined()")
            data = self.fresh("b")
            self.emit(indent, f"{data} = {v}.encode()" if kind == "string" else f"{data} = {v}")
            self.length(indent, f"len({data})")
            self.emit(indent, f"x({data})")
        elif kind in ("long", "int"):
            self.emit(indent, f"if {_PRIMITIVE_CHECKS[kind].format(v=v)}:")
            self.emit(indent + 1, "raise _declined()")
            self.emit(indent, f"if -64 <= {v} < 64:")
            self.emit(indent + 1, f"a(({v} << 1) ^ ({v} >> 63))")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"_varint(out, {v})")
        elif kind == "boolean":
            self.emit(indent, f"if {v} is True:")
            self.emit(indent + 1, "a(1)")
            self.emit(indent, f"elif {v} is False:")
            self.emit(indent + 1, "a(0)")
            self.emit(indent, "else:")
            self.emit(indent + 1, "raise _declined()")
        elif kind == "null":
            self.emit(indent, f"if {v} is not None:")
            self.emit(indent + 1, "raise _declined()")
        elif kind in ("double", "float"):
            self.emit(indent, f"if type({v}) is not float:")
            self.emit(indent + 1, "raise _declined()")
            if kind == "float":  # beyond float32's range struct refuses it (fastavro decides)
                self.emit(indent, f"if {v} - {v} == 0.0 and abs({v}) > 3.4028234663852886e38:")
                self.emit(indent + 1, "raise _declined()")
            self.emit(indent, f"x(_{kind}({v}))")
        elif kind == "record":
            self.record(indent, schema, v)
        elif kind in ("map", "array"):
            self.container(indent, schema, kind, v)
        elif kind == "enum":
            index = self.fresh("_symbols")
            self.constants[index] = {s: i for i, s in enumerate(schema["symbols"])}
            code = self.fresh("e")
            self.emit(indent, f"{code} = {index}.get({v}) if type({v}) is str else None")
            self.emit(indent, f"if {code} is None:")
            self.emit(indent + 1, "raise _declined()")
            self.length(indent, code)
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")

    def length(self, indent: int, expression: str) -> None:
        """A non-negative count (length, index) as a varint."""
        n = self.fresh("n")
        self.emit(indent, f"{n} = {expression}")
        self.emit(indent, f"if {n} < 64:")
        self.emit(indent + 1, f"a({n} << 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"_varint(out, {n})")

    def logical(self, indent: int, kind: str, logical: str, v: str) -> None:
        """Lines turning the logical value in ``v`` into its underlying type's, in place."""
        if kind == "long" and logical in ("timestamp-millis", "timestamp-micros"):
            self.emit(indent, f"if type({v}) is _datetime:")
            self.emit(indent + 1, f"if {v}.tzinfo is None:")  # fastavro: local time
            self.emit(indent + 2, "raise _declined()")
            delta = self.fresh("d")
            self.emit(indent + 1, f"{delta} = {v} - _EPOCH")
            seconds = f"({delta}.days * 86400 + {delta}.seconds)"
            if logical == "timestamp-millis":
                self.emit(indent + 1, f"{v} = {seconds} * 1000 + {delta}.microseconds // 1000")
            else:
                self.emit(indent + 1, f"{v} = {seconds} * 1000000 + {delta}.microseconds")
        elif kind == "string" and logical == "uuid":
            self.emit(indent, f"if type({v}) is _UUID:")
            self.emit(indent + 1, f"{v} = str({v})")
        else:
            raise UnsupportedSchemaError(f"logical type {logical!r} of {kind!r}")

    def union(self, indent: int, branches: list[Any], v: str) -> None:
        names = [b if isinstance(b, str) else b.get("type") for b in branches]
        if len(branches) == 2 and names.count("null") == 1:
            null = names.index("null")
            self.emit(indent, f"if {v} is None:")
            self.emit(indent + 1, f"a({null << 1})")
            self.emit(indent, "else:")
            self.emit(indent + 1, f"a({(1 - null) << 1})")
            self.value(indent + 1, branches[1 - null], v)
            return
        if not all(isinstance(b, str) and b in _PRIMITIVES for b in branches):
            raise UnsupportedSchemaError("a union of other than plain primitive types")
        # One branch per Python class, dispatched on the value's exact class. Which branch
        # is fastavro's own choice, asked of it here with a probe value of each class (it
        # picks the first branch that takes the value, and for a float skips a 'float'
        # branch when a 'double' follows): the compiled code never decides it differently.
        cls = self.fresh("c")
        self.emit(indent, f"{cls} = type({v})")
        keyword = "if"
        for python_class, probes in _UNION_PROBES:
            index = _fastavro_branch(branches, probes)
            if index is None:
                continue
            if python_class == "NoneType":
                self.emit(indent, f"{keyword} {v} is None:")
            else:
                self.emit(indent, f"{keyword} {cls} is {python_class}:")
            self.emit(indent + 1, f"a({index << 1})")
            self.value(indent + 1, branches[index], v)
            keyword = "elif"
        if keyword == "if":  # no class of value fastavro would write here
            raise UnsupportedSchemaError(f"a union fastavro writes no probe to: {branches}")
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise _declined()")

    def record(self, indent: int, schema: dict[str, Any], v: str) -> None:
        self.emit(indent, f"if type({v}) is not dict:")
        self.emit(indent + 1, "raise _declined()")
        for field in schema["fields"]:
            local = self.fresh("f")
            self.emit(indent, f"{local} = {v}[{field['name']!r}]")
            self.value(indent, field["type"], local)

    def container(self, indent: int, schema: dict[str, Any], kind: str, v: str) -> None:
        self.emit(indent, f"if type({v}) is not {'dict' if kind == 'map' else 'list'}:")
        self.emit(indent + 1, "raise _declined()")
        self.emit(indent, f"if {v}:")
        self.length(indent + 1, f"len({v})")
        item = self.fresh("i")
        if kind == "map":
            key = self.fresh("k")
            self.emit(indent + 1, f"for {key}, {item} in {v}.items():")
            self.value(indent + 2, "string", key)
            self.value(indent + 2, schema["values"], item)
        else:
            self.emit(indent + 1, f"for {item} in {v}:")
            self.value(indent + 2, schema["items"], item)
        self.emit(indent, "a(0)")


def compile_encoder(parsed_schema: Any, prefix: bytes = b"") -> Encoder | None:
    """An encoder of records of ``parsed_schema`` (as ``fastavro.parse_schema`` returns it)
    whose output starts with ``prefix`` (a wire-format header), or None when the schema
    has a shape this module does not handle."""
    generator = _Generator()
    generator.constants["_PREFIX"] = prefix
    try:
        generator.value(1, parsed_schema, "record")
    except UnsupportedSchemaError:
        return None
    source = "\n".join(
        [
            "def encode(record):",
            "    out = bytearray(_PREFIX)",
            "    a = out.append",
            "    x = out.extend",
            *generator.lines,
            "    return bytes(out)",
        ]
    )
    namespace = dict(generator.constants)
    try:
        code = compile(source, "<compiled avro encoder>", "exec")
    except (SyntaxError, RecursionError):  # nested deeper than Python's blocks allow
        return None
    exec(code, namespace)  # noqa: S102 - generated from the schema's shape and names only
    encoder: Encoder = namespace["encode"]
    return encoder
