"""Compiled decoders (serde/compiled.py) give what fastavro gives, for every shipped schema:
the same records for well-formed bodies, and for anything else the very outcome fastavro
alone gives (AvroSerde falls back to it)."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from typing import Any

import fastavro
import pytest
from fastavro.utils import generate_many

from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import (
    AvroSerde,
    InMemoryRegistry,
    SerdeError,
    frame,
    load_schema,
    schema_names,
)
from streamlearn.serde.avro import _plain
from streamlearn.serde.compiled import MalformedBodyError, compile_decoder


def typed(value: Any) -> Any:
    """``value`` with every type and key order spelled out (NaN equal to itself)."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    return (type(value).__name__, repr(value))


def outcome(decode: Callable[[bytes], Any], data: bytes) -> Any:
    try:
        return ("value", typed(decode(data)))
    except SerdeError as exc:
        # fastavro's messages may name its stream object, at an address of the moment.
        return ("error", type(exc).__name__, re.sub(r" at 0x[0-9a-f]+", "", str(exc)))


def serdes(name: str, logical_types: bool) -> tuple[AvroSerde, AvroSerde]:
    registry = InMemoryRegistry()
    return (
        AvroSerde(registry, name, f"{name}-value", logical_types=logical_types),
        AvroSerde(registry, name, f"{name}-value", logical_types=logical_types, compiled=False),
    )


def random_records(name: str, count: int) -> list[dict[str, Any]]:
    random.seed(f"{name}-{count}")  # generate_many draws from the random module
    return list(generate_many(fastavro.parse_schema(_plain(load_schema(name))), count))


def encoded(serde: AvroSerde, name: str, records: list[dict[str, Any]]) -> list[bytes]:
    """Written with the plain schema (timestamps as the longs the wire holds) and framed
    with the serde's schema id: the bytes a producer of ``name`` writes."""
    plain = fastavro.parse_schema(_plain(load_schema(name)))
    out = []
    for record in records:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, plain, record)
        out.append(frame(serde.schema_id, buffer.getvalue()))
    return out


def damaged(data: bytes, damage: random.Random) -> list[bytes]:
    """``data`` itself, with a byte more or less, cut in half, and with one byte changed
    (12 times) after the 5-byte frame header."""
    variants = [data, data + b"\x00", data[:-1], data[: len(data) // 2]]
    for _ in range(12):
        flipped = bytearray(data)
        flipped[damage.randrange(5, len(data))] = damage.randrange(256)
        variants.append(bytes(flipped))
    return variants


@pytest.mark.parametrize("name", schema_names())
def test_every_shipped_schema_compiles(name: str) -> None:
    for schema in (load_schema(name), _plain(load_schema(name))):
        assert compile_decoder(fastavro.parse_schema(schema)) is not None


@pytest.mark.parametrize("logical_types", [True, False])
@pytest.mark.parametrize("name", schema_names())
def test_well_formed_and_damaged_bodies_decode_as_fastavro_decodes_them(
    name: str, logical_types: bool
) -> None:
    compiled, plain = serdes(name, logical_types)
    damage = random.Random(name)
    for data in encoded(compiled, name, random_records(name, 25)):
        for variant in damaged(data, damage):
            assert outcome(compiled.decode, variant) == outcome(plain.decode, variant)


def test_real_records_decode_identically_and_through_the_compiled_path() -> None:
    compiled, plain = serdes("TrainingExample", logical_types=True)
    examples = ClickWorld(seed=3).training_examples(50)
    for example in examples:
        data = compiled.encode(example)
        assert typed(compiled.decode(data)) == typed(plain.decode(data))
    (decoder,) = compiled._compiled.values()  # the fast path is taken
    assert typed(decoder(data, 5)) == typed(plain.decode(data))


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        ("boolean", b"\x02"),  # a boolean byte that is neither 0 nor 1
        (["null", "string"], b"\x04"),  # union index out of range
        (["null", "string"], b"\x01"),  # negative union index
        ("string", b"\x03a"),  # negative length
        ("string", b"\x04\xff\xfe"),  # invalid UTF-8
        ("string", b"\x08ab"),  # shorter than its length
        ("long", b"\xff" * 10 + b"\x01"),  # varint past ten bytes
        ("long", b"\x00\x00"),  # bytes left over
        ({"type": "enum", "name": "E", "symbols": ["a"]}, b"\x02"),  # symbol out of range
    ],
)
def test_the_compiled_decoder_declines_what_is_not_plainly_well_formed(
    schema: Any, body: bytes
) -> None:
    decoder = compile_decoder(fastavro.parse_schema(schema))
    assert decoder is not None
    with pytest.raises((MalformedBodyError, IndexError, ValueError)):
        decoder(b"\x00" * 5 + body, 5)


def test_shapes_it_does_not_handle_get_no_decoder() -> None:
    fixed = {"type": "fixed", "name": "F", "size": 4}
    decimal = {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}
    for schema in (fixed, decimal):
        assert compile_decoder(fastavro.parse_schema(schema)) is None


def _projections(name: str) -> list[tuple[str, ...]]:
    names = [field["name"] for field in load_schema(name)["fields"]]
    return [tuple(names[::2]), tuple(names[1::2]), (names[-1],)]


@pytest.mark.parametrize("logical_types", [True, False])
@pytest.mark.parametrize("name", schema_names())
def test_projections_decode_as_fastavro_reads_into_a_schema_of_those_fields(
    name: str, logical_types: bool
) -> None:
    damage = random.Random(f"{name}-projected")
    records = random_records(name, 25)
    for fields in _projections(name):
        registry = InMemoryRegistry()
        compiled, plain = (
            AvroSerde(registry, name, f"{name}-value", logical_types=logical_types,
                      fields=fields, compiled=use)
            for use in (True, False)
        )  # fmt: skip
        whole = AvroSerde(registry, name, f"{name}-value", logical_types=logical_types)
        for data in encoded(compiled, name, records):
            try:
                full = whole.decode(data)
            except SerdeError:  # random timestamps beyond datetime's years: compared below
                pass
            else:
                assert typed(compiled.decode(data)) == typed({k: full[k] for k in fields})
                (decoder,) = compiled._compiled.values()  # the fast path is taken
                assert list(decoder(data, 5)) == list(fields)
            for variant in damaged(data, damage):
                assert outcome(compiled.decode, variant) == outcome(plain.decode, variant)


def test_a_projection_reads_past_what_it_skips_without_running_through_it() -> None:
    schema = {
        "type": "record", "name": "R",
        "fields": [
            {"name": "m", "type": {"type": "map", "values": ["null", "long", "string"]}},
            {"name": "a", "type": {"type": "array", "items": "null"}},
            {"name": "kept", "type": "long"},
        ],
    }  # fmt: skip
    parsed = fastavro.parse_schema(schema)
    decoder = compile_decoder(parsed, keep={"kept"})
    assert decoder is not None
    body = io.BytesIO()
    record = {"m": {"x": 1, "y": "z", "n": None}, "a": [None] * 3, "kept": 7}
    fastavro.schemaless_writer(body, parsed, record)
    assert decoder(b"\x00" * 5 + body.getvalue(), 5) == {"kept": 7}
    # A block of 2**60 items that take no bytes: nothing to walk, so no 2**60 turns.
    huge = b"\x00" + b"\x80\x80\x80\x80\x80\x80\x80\x80\x20" + b"\x00" + b"\x0e"
    assert decoder(b"\x00" * 5 + huge, 5) == {"kept": 7}


def test_serdes_of_one_schema_share_its_compiled_code_and_others_do_not() -> None:
    """Compiling costs milliseconds: a serde per record (as a test once made) spent most
    of its time compiling. Serdes of the same schema, header and options share the
    functions; another option (logical types, a projection) compiles its own."""

    def made(**options: Any) -> tuple[Any, Any]:
        serde = AvroSerde(registry, "TrainingExample", "t-value", **options)
        assert serde.schema_id == 1  # registered: the encoder is compiled
        serde.decode(data)
        (decoder,) = serde._compiled.values()
        return serde._encoder, decoder

    registry = InMemoryRegistry()
    example = ClickWorld(seed=3).training_examples(1)[0]
    data = AvroSerde(registry, "TrainingExample", "t-value").encode(example)
    first, second = made(), made()
    assert first[0] is second[0]
    assert first[1] is second[1]
    plain = made(logical_types=False)
    assert plain[0] is not first[0]
    assert plain[1] is not first[1]
    projected = made(fields=["request_id"])
    assert projected[1] is not first[1]
    assert projected[0] is first[0], "a projection only changes what is decoded"
