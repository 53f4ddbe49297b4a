"""Avro decoders compiled once per writer schema: Python source generated from the schema.

fastavro's reader walks the schema for every record (a type lookup and a call per field,
a map value's union resolved by name), which for a ``TrainingExample`` costs more than
the learner's whole ``learn_one``. The code :func:`compile_decoder` generates reads the
same bytes with the schema's shape unrolled into straight-line code (one local per field,
single-byte varints inline), about three times faster.

It is an accelerator, never a second definition of the format: it returns exactly what
``fastavro.schemaless_reader`` returns for well-formed bodies (the same dict, keys in
writer order, the same Python types, logical types through fastavro's own converters),
and raises on anything it does not take as plainly well-formed (an index out of range, a
boolean byte other than 0 or 1, a varint past 64 bits, bytes left over, invalid UTF-8...).
:class:`~streamlearn.serde.avro.AvroSerde` then decodes the record with fastavro, which
returns or explains it exactly as it always has. Schemas with shapes it does not handle
(named type references, decimals, ``fixed``) get no compiled decoder at all.

The generated source contains nothing from the schema but field names and enum symbols,
written as ``repr`` literals, and numbers.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection
from typing import Any

from fastavro.read import LOGICAL_READERS

Decoder = Callable[[bytes, int], Any]
"""``decode(data, start)``: the record whose Avro body starts at ``start`` of ``data`` and
ends exactly at its end."""

_SAFE_LOGICAL = frozenset(
    {
        "long-timestamp-millis",
        "long-timestamp-micros",
        "long-local-timestamp-millis",
        "long-local-timestamp-micros",
        "int-date",
        "int-time-millis",
        "long-time-micros",
        "string-uuid",
    }
)
"""fastavro's logical converters that read nothing but the value (no scale, no precision)."""


class MalformedBodyError(ValueError):
    """The compiled decoder does not take the body as well-formed (fastavro decides)."""


class UnsupportedSchemaError(Exception):
    """A schema shape the generator does not handle."""


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint of two bytes or more at ``pos``: (value, position after it).

    Unrolled to six bytes (a millisecond timestamp's), then a loop."""
    r = data[pos] & 0x7F
    b = data[pos + 1]
    r |= (b & 0x7F) << 7
    if b < 0x80:
        return (r >> 1) ^ -(r & 1), pos + 2
    b = data[pos + 2]
    r |= (b & 0x7F) << 14
    if b < 0x80:
        return (r >> 1) ^ -(r & 1), pos + 3
    b = data[pos + 3]
    r |= (b & 0x7F) << 21
    if b < 0x80:
        return (r >> 1) ^ -(r & 1), pos + 4
    b = data[pos + 4]
    r |= (b & 0x7F) << 28
    if b < 0x80:
        return (r >> 1) ^ -(r & 1), pos + 5
    b = data[pos + 5]
    r |= (b & 0x7F) << 35
    if b < 0x80:
        return (r >> 1) ^ -(r & 1), pos + 6
    pos, shift = pos + 6, 42
    while True:
        b = data[pos]
        pos += 1
        r |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise MalformedBodyError("varint longer than ten bytes")
    if r >> 64:
        raise MalformedBodyError("varint beyond 64 bits")
    return (r >> 1) ^ -(r & 1), pos


def _skip_long(data: bytes, pos: int) -> int:
    """The position after a varint of two bytes or more at ``pos`` (at most ten)."""
    for end in range(pos + 1, pos + 10):
        if data[end] < 0x80:
            return end + 1
    raise MalformedBodyError("varint longer than ten bytes")


def _malformed() -> MalformedBodyError:
    return MalformedBodyError("not a plainly well-formed body")


class _Generator:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names = 0
        self.constants: dict[str, Any] = {
            "_long": _long,
            "_skip_long": _skip_long,
            "_malformed": _malformed,
            "_double": struct.Struct("<d").unpack_from,
            "_float": struct.Struct("<f").unpack_from,
        }

    def fresh(self, stem: str) -> str:
        self.names += 1
        return f"{stem}{self.names}"

    def constant(self, value: Any) -> str:
        name = self.fresh("_c")
        self.constants[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def long(self, indent: int, target: str) -> None:
        byte = self.fresh("b")
        self.emit(indent, f"{byte} = data[pos]")
        self.emit(indent, f"if {byte} < 128:")
        self.emit(indent + 1, f"{target} = ({byte} >> 1) ^ -({byte} & 1)")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{target}, pos = _long(data, pos)")

    def sized(self, indent: int, target: str, convert: str) -> None:
        """A length (non-negative; a single even byte for most) then that many bytes."""
        size, end = self.fresh("n"), self.fresh("e")
        self.emit(indent, f"{size} = data[pos]")
        self.emit(indent, f"if {size} < 128 and not {size} & 1:")
        self.emit(indent + 1, f"{end} = pos + 1 + ({size} >> 1)")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{size}, pos = _long(data, pos)")
        self.emit(indent + 1, f"if {size} < 0:")
        self.emit(indent + 2, "raise _malformed()")
        self.emit(indent + 1, f"{end} = pos + {size}")
        self.emit(indent, f"if {end} > size:")
        self.emit(indent + 1, "raise _malformed()")
        self.emit(indent, f"{target} = {convert.format(f'data[pos:{end}]')}")
        self.emit(indent, f"pos = {end}")

    def value(self, indent: int, schema: Any, target: str) -> None:
        """Code reading one value of ``schema`` into local ``target``."""
        if isinstance(schema, list):
            self.union(indent, schema, target)
            return
        kind = schema if isinstance(schema, str) else schema.get("type")
        logical = schema.get("logicalType") if isinstance(schema, dict) else None
        if logical is not None and not isinstance(kind, str):
            raise UnsupportedSchemaError(f"logical type on {kind!r}")
        converter = None
        if logical is not None:
            key = f"{kind}-{logical}"
            if key in LOGICAL_READERS:
                if key not in _SAFE_LOGICAL:
                    raise UnsupportedSchemaError(f"logical type {key}")
                converter = self.constant(LOGICAL_READERS[key])
        if kind == "null":
            self.emit(indent, f"{target} = None")
        elif kind == "boolean":
            self.emit(indent, f"{target} = data[pos]")
            self.emit(indent, "pos += 1")
            self.emit(indent, f"if {target} > 1:")
            self.emit(indent + 1, "raise _malformed()")
            self.emit(indent, f"{target} = {target} == 1")
        elif kind == "long":
            self.long(indent, target)
        elif kind == "int":
            self.long(indent, target)
            self.emit(indent, f"if not -2147483648 <= {target} <= 2147483647:")
            self.emit(indent + 1, "raise _malformed()")
        elif kind in ("double", "float"):
            width = 8 if kind == "double" else 4
            self.emit(indent, f"{target} = _{kind}(data, pos)[0]")
            self.emit(indent, f"pos += {width}")
        elif kind == "string":
            self.sized(indent, target, "{}.decode()")
        elif kind == "bytes":
            self.sized(indent, target, "{}")
        elif kind == "enum":
            symbols = self.constant(tuple(schema["symbols"]))
            index = self.fresh("i")
            self.long(indent, index)
            self.emit(indent, f"if not 0 <= {index} < {len(schema['symbols'])}:")
            self.emit(indent + 1, "raise _malformed()")
            self.emit(indent, f"{target} = {symbols}[{index}]")
        elif kind == "record":
            self.record(indent, schema, target)
        elif kind in ("map", "array"):
            self.container(indent, schema, target, kind)
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")
        if converter is not None:
            self.emit(indent, f"{target} = {converter}({target}, None, None)")

    def union(self, indent: int, branches: list[Any], target: str) -> None:
        # Index i < 64 is the single byte 2i (zigzag); anything else is declined.
        index = self.fresh("u")
        self.emit(indent, f"{index} = data[pos]")
        self.emit(indent, "pos += 1")
        for position, branch in enumerate(branches[:64]):
            self.emit(indent, f"{'if' if position == 0 else 'elif'} {index} == {2 * position}:")
            self.value(indent + 1, branch, target)
        self.emit(indent, "else:")
        self.emit(indent + 1, "raise _malformed()")

    def record(
        self, indent: int, schema: dict[str, Any], target: str, keep: Collection[str] | None = None
    ) -> None:
        """A record; with ``keep``, its other fields are skipped (read past, not built)."""
        fields = []
        for field in schema["fields"]:
            if keep is not None and field["name"] not in keep:
                self.skip(indent, field["type"])
                continue
            local = self.fresh("f")
            self.value(indent, field["type"], local)
            fields.append(f"{field['name']!r}: {local}")
        self.emit(indent, f"{target} = {{{', '.join(fields)}}}")

    def skip_long(self, indent: int) -> None:
        """Past a varint (at most ten bytes, else declined), its value not computed."""
        self.emit(indent, "if data[pos] < 128:")
        self.emit(indent + 1, "pos += 1")
        self.emit(indent, "else:")
        self.emit(indent + 1, "pos = _skip_long(data, pos)")

    def skip(self, indent: int, schema: Any) -> None:
        """Code reading past one value of ``schema``: what fastavro's reader does with a
        writer's field the reader schema does not have (strings are not decoded, so not
        checked as UTF-8, as there), at least as strict about the structure (lengths,
        union indexes, the end of the body)."""
        if isinstance(schema, list):
            index = self.fresh("u")
            self.emit(indent, f"{index} = data[pos]")
            self.emit(indent, "pos += 1")
            branches = schema[:64]
            for position, branch in enumerate(branches):
                self.emit(indent, f"{'if' if position == 0 else 'elif'} {index} == {2 * position}:")
                before = len(self.lines)
                self.skip(indent + 1, branch)
                if len(self.lines) == before:
                    self.emit(indent + 1, "pass")
            self.emit(indent, "else:")
            self.emit(indent + 1, "raise _malformed()")
            return
        kind = schema if isinstance(schema, str) else schema.get("type")
        if kind == "null":
            return
        if kind == "boolean":
            self.emit(indent, "if data[pos] > 1:")
            self.emit(indent + 1, "raise _malformed()")
            self.emit(indent, "pos += 1")
        elif kind in ("long", "int", "enum"):
            self.skip_long(indent)
        elif kind in ("double", "float"):
            self.emit(indent, f"pos += {8 if kind == 'double' else 4}")
        elif kind in ("string", "bytes"):
            self.skip_sized(indent)
        elif kind == "record":
            for field in schema["fields"]:
                self.skip(indent, field["type"])
        elif kind in ("map", "array"):
            count = self.fresh("k")
            self.blocks(indent, count)
            self.skip_long(indent + 2)  # the block's size in bytes
            loop = len(self.lines)
            if kind == "map":
                self.skip_sized(indent + 2)
                self.skip(indent + 2, schema["values"])
            else:
                self.skip(indent + 2, schema["items"])
            if len(self.lines) > loop:  # items of no bytes (null) need no turn each
                self.lines.insert(loop, "    " * (indent + 1) + f"for _ in range({count}):")
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")

    def skip_sized(self, indent: int) -> None:
        """Past a length and that many bytes (an end past the body is caught by the next
        read or by the final check that the body ends where the record does)."""
        size = self.fresh("n")
        self.emit(indent, f"{size} = data[pos]")
        self.emit(indent, f"if {size} < 128 and not {size} & 1:")
        self.emit(indent + 1, f"pos += 1 + ({size} >> 1)")
        self.emit(indent, "else:")
        self.emit(indent + 1, f"{size}, pos = _long(data, pos)")
        self.emit(indent + 1, f"if {size} < 0:")
        self.emit(indent + 2, "raise _malformed()")
        self.emit(indent + 1, f"pos += {size}")

    def blocks(self, indent: int, count: str) -> None:
        """The loop over a map's or array's blocks, up to its items: each block's item
        count into local ``count``; a count of 0 ends it. A negative count is followed by
        the block's size in bytes, which the caller reads at ``indent + 2`` (the items
        are read one by one anyway)."""
        self.emit(indent, "while True:")
        self.long(indent + 1, count)
        self.emit(indent + 1, f"if {count} == 0:")
        self.emit(indent + 2, "break")
        self.emit(indent + 1, f"if {count} < 0:")
        self.emit(indent + 2, f"{count} = -{count}")

    def container(self, indent: int, schema: dict[str, Any], target: str, kind: str) -> None:
        count, item, key = self.fresh("k"), self.fresh("v"), self.fresh("s")
        self.emit(indent, f"{target} = {{}}" if kind == "map" else f"{target} = []")
        self.blocks(indent, count)
        self.long(indent + 2, self.fresh("z"))  # the block's size in bytes: not needed
        self.emit(indent + 1, f"for _ in range({count}):")
        if kind == "map":
            self.sized(indent + 2, key, "{}.decode()")
            self.value(indent + 2, schema["values"], item)
            self.emit(indent + 2, f"{target}[{key}] = {item}")
        else:
            self.value(indent + 2, schema["items"], item)
            self.emit(indent + 2, f"{target}.append({item})")


def compile_decoder(parsed_schema: Any, keep: Collection[str] | None = None) -> Decoder | None:
    """A decoder of bodies written with ``parsed_schema`` (as ``fastavro.parse_schema``
    returns it), or None when the schema has a shape this module does not handle.

    ``keep``: the top-level record's fields to return (in writer order); the others are
    read past, as fastavro does with a reader schema that has only those fields."""
    generator = _Generator()
    try:
        if keep is None:
            generator.value(1, parsed_schema, "result")
        elif isinstance(parsed_schema, dict) and parsed_schema.get("type") == "record":
            generator.record(1, parsed_schema, "result", keep)
        else:
            raise UnsupportedSchemaError("fields are only kept of a record")
    except UnsupportedSchemaError:
        return None
    source = "\n".join(
        [
            "def decode(data, pos):",
            "    size = len(data)",
            *generator.lines,
            "    if pos != size:",
            "        raise _malformed()",
            "    return result",
        ]
    )
    namespace = dict(generator.constants)
    try:
        code = compile(source, "<compiled avro decoder>", "exec")
    except (SyntaxError, RecursionError):  # nested deeper than Python's blocks allow
        return None
    exec(code, namespace)  # noqa: S102 - see the module docstring
    decoder: Decoder = namespace["decode"]
    return decoder
