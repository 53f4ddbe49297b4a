"""A table of Avro schema changes and the compatibility verdicts the registry must give.

Each row is an (old, new) pair with two verdicts taken from the Avro 1.12 specification's
schema-resolution rules (https://avro.apache.org/docs/1.12.0/specification/#schema-resolution),
not from running the implementation: BACKWARD asks whether ``new`` as reader resolves data
written with ``old``, FORWARD whether ``old`` as reader resolves data written with ``new``, and
FULL is both. Where Apache Avro's Python checker disagrees with the specification, the case is
a strict xfail whose reason states the disagreement (see ``DISAGREEMENTS``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from streamlearn.registry.compatibility import Level, check

Json = dict[str, Any]


def field(name: str, type_: Any, **extra: Any) -> Json:
    """A record field; ``extra`` carries ``default``, ``aliases``, ..."""
    return {"name": name, "type": type_, **extra}


def record_type(*fields: Json, name: str = "R", **extra: Any) -> Json:
    """A record schema as a JSON object, for nesting inside other schemas."""
    return {"type": "record", "name": name, **extra, "fields": list(fields)}


def record(*fields: Json, name: str = "R", **extra: Any) -> str:
    """A top-level record schema as JSON text."""
    return json.dumps(record_type(*fields, name=name, **extra))


ID = field("id", "int")


def with_f(type_: Any, **extra: Any) -> str:
    """The record ``R`` with an ``id`` and one field ``f`` of ``type_``."""
    return record(ID, field("f", type_, **extra))


def enum(*symbols: str, default: str | None = None) -> Json:
    schema: Json = {"type": "enum", "name": "E", "symbols": list(symbols)}
    if default is not None:
        schema["default"] = default
    return schema


def array(items: Any) -> Json:
    return {"type": "array", "items": items}


def map_of(values: Any) -> Json:
    return {"type": "map", "values": values}


def fixed(size: int, name: str = "Hash") -> Json:
    return {"type": "fixed", "name": name, "size": size}


def decimal(precision: int, scale: int) -> Json:
    return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}


def item(*fields: Json) -> Json:
    return record_type(*fields, name="Item")


def nested(*fields: Json, name: str = "Inner", **extra: Any) -> str:
    """The record ``R`` with an ``id`` and a nested record field ``inner``."""
    return record(ID, field("inner", record_type(*fields, name=name, **extra)))


A_INT = field("a", "int")
B_STR = field("b", "string")
B_STR_DEFAULT = field("b", "string", default="")


@dataclass(frozen=True)
class Pair:
    id: str
    old: str
    new: str
    backward: bool  # new, as reader, resolves data written with old
    forward: bool  # old, as reader, resolves data written with new


def promotion(old: str, new: str, *, backward: bool, forward: bool) -> Pair:
    return Pair(f"{old}-to-{new}", with_f(old), with_f(new), backward, forward)


PAIRS: list[Pair] = [
    # Records: fields are matched by name; a reader field missing from the writer needs a
    # default; a writer field missing from the reader is ignored.
    Pair(
        "fields-reordered",
        record(ID, A_INT, B_STR),
        record(B_STR, ID, A_INT),
        True,
        True,
    ),
    Pair("field-added-with-default", record(ID), record(ID, B_STR_DEFAULT), True, True),
    Pair("field-added-without-default", record(ID), record(ID, B_STR), False, True),
    Pair("field-removed-had-default", record(ID, B_STR_DEFAULT), record(ID), True, True),
    Pair("field-removed-had-no-default", record(ID, B_STR), record(ID), True, False),
    # Aliases rewrite the writer's schema with the reader's aliases.
    Pair(
        "field-renamed-with-alias",
        record(ID, field("a", "string")),
        record(ID, field("b", "string", aliases=["a"])),
        True,
        False,
    ),
    Pair(
        "field-renamed-without-alias",
        record(ID, field("a", "string")),
        record(ID, field("b", "string")),
        False,
        False,
    ),
    # Promotions: int -> long, float, double; long -> float, double; float -> double;
    # string <-> bytes. Nothing else, so every narrowing fails the reader that narrows.
    promotion("int", "long", backward=True, forward=False),
    promotion("int", "float", backward=True, forward=False),
    promotion("int", "double", backward=True, forward=False),
    promotion("long", "float", backward=True, forward=False),
    promotion("long", "double", backward=True, forward=False),
    promotion("float", "double", backward=True, forward=False),
    promotion("long", "int", backward=False, forward=True),
    promotion("float", "int", backward=False, forward=True),
    promotion("double", "int", backward=False, forward=True),
    promotion("float", "long", backward=False, forward=True),
    promotion("double", "long", backward=False, forward=True),
    promotion("double", "float", backward=False, forward=True),
    promotion("string", "bytes", backward=True, forward=True),
    promotion("bytes", "string", backward=True, forward=True),
    promotion("string", "int", backward=False, forward=False),
    # Enums: a writer symbol missing from the reader needs the reader's enum default.
    Pair("enum-symbol-added", with_f(enum("A", "B")), with_f(enum("A", "B", "C")), True, False),
    Pair(
        "enum-symbol-added-both-have-default",
        with_f(enum("A", "B", default="A")),
        with_f(enum("A", "B", "C", default="A")),
        True,
        True,
    ),
    Pair(
        "enum-symbol-added-only-new-has-default",
        with_f(enum("A", "B")),
        with_f(enum("A", "B", "C", default="A")),
        True,
        False,
    ),
    Pair("enum-symbol-removed", with_f(enum("A", "B", "C")), with_f(enum("A", "B")), False, True),
    Pair(
        "enum-symbol-removed-new-has-default",
        with_f(enum("A", "B", "C")),
        with_f(enum("A", "B", default="A")),
        True,
        True,
    ),
    Pair(
        "enum-symbol-removed-only-old-has-default",
        with_f(enum("A", "B", "C", default="A")),
        with_f(enum("A", "B")),
        False,
        True,
    ),
    # Unions: each branch the writer may select must match some branch of the reader (or the
    # reader itself when it is not a union); matching includes promotion.
    Pair(
        "union-widened",
        with_f(["null", "string"]),
        with_f(["null", "string", "int"]),
        True,
        False,
    ),
    Pair(
        "union-narrowed",
        with_f(["null", "string", "int"]),
        with_f(["null", "string"]),
        False,
        True,
    ),
    Pair(
        "union-widened-with-promotable-branch",
        with_f(["null", "long"]),
        with_f(["null", "long", "int"]),
        True,
        True,
    ),
    Pair("string-became-nullable-union", with_f("string"), with_f(["null", "string"]), True, False),
    Pair("nullable-union-became-string", with_f(["null", "string"]), with_f("string"), False, True),
    Pair("int-long-union-became-double", with_f(["int", "long"]), with_f("double"), True, False),
    Pair("int-became-nullable-long", with_f("int"), with_f(["null", "long"]), True, False),
    # Nested records resolve recursively.
    Pair(
        "nested-field-added-with-default", nested(A_INT), nested(A_INT, B_STR_DEFAULT), True, True
    ),
    Pair("nested-field-added-without-default", nested(A_INT), nested(A_INT, B_STR), False, True),
    Pair("nested-field-removed-had-no-default", nested(A_INT, B_STR), nested(A_INT), True, False),
    Pair(
        "nested-record-renamed-with-alias",
        nested(A_INT),
        nested(A_INT, name="Inner2", aliases=["Inner"]),
        True,
        False,
    ),
    # Arrays and maps resolve their item / value schemas recursively.
    Pair("array-items-int-to-long", with_f(array("int")), with_f(array("long")), True, False),
    Pair("array-items-long-to-int", with_f(array("long")), with_f(array("int")), False, True),
    Pair("map-values-int-to-double", with_f(map_of("int")), with_f(map_of("double")), True, False),
    Pair("map-values-double-to-int", with_f(map_of("double")), with_f(map_of("int")), False, True),
    Pair(
        "array-of-records-field-added-with-default",
        with_f(array(item(A_INT))),
        with_f(array(item(A_INT, B_STR_DEFAULT))),
        True,
        True,
    ),
    Pair(
        "array-of-records-field-added-without-default",
        with_f(array(item(A_INT))),
        with_f(array(item(A_INT, B_STR))),
        False,
        True,
    ),
    Pair(
        "map-of-records-field-removed-had-no-default",
        with_f(map_of(item(A_INT, B_STR))),
        with_f(map_of(item(A_INT))),
        True,
        False,
    ),
    Pair(
        "map-of-records-field-int-to-long",
        with_f(map_of(item(A_INT))),
        with_f(map_of(item(field("a", "long")))),
        True,
        False,
    ),
    Pair("array-became-map", with_f(array("int")), with_f(map_of("int")), False, False),
    # Fixed types match only with the same (unqualified) name and size.
    Pair("fixed-size-changed", with_f(fixed(16)), with_f(fixed(32)), False, False),
    Pair("fixed-renamed", with_f(fixed(16)), with_f(fixed(16, name="Digest")), False, False),
    # Records match only with the same unqualified name, or through the reader's aliases.
    Pair("record-renamed-without-alias", record(ID), record(ID, name="S"), False, False),
    Pair(
        "record-renamed-with-alias",
        record(ID),
        record(ID, name="S", aliases=["R"]),
        True,
        False,
    ),
    # An alias may be relative to the namespace of the name it is an alias for.
    Pair(
        "record-renamed-with-relative-alias-in-namespace",
        record(ID, namespace="com.acme"),
        record(ID, name="S", namespace="com.acme", aliases=["R"]),
        True,
        False,
    ),
    Pair(
        "record-renamed-with-qualified-alias-in-namespace",
        record(ID, namespace="com.acme"),
        record(ID, name="S", namespace="com.acme", aliases=["com.acme.R"]),
        True,
        False,
    ),
    Pair(
        "record-namespace-changed",
        record(ID, namespace="com.a"),
        record(ID, namespace="com.b"),
        True,
        True,
    ),
    # Decimal logical types match only if their scales and precisions match.
    Pair("decimal-precision-changed", with_f(decimal(4, 2)), with_f(decimal(6, 2)), False, False),
    # Optional fields: a nullable union with a null default.
    Pair(
        "optional-field-added-with-null-default",
        record(ID),
        with_f(["null", "string"], default=None),
        True,
        True,
    ),
    Pair(
        "optional-field-removed-had-null-default",
        with_f(["null", "string"], default=None),
        record(ID),
        True,
        True,
    ),
    Pair(
        "optional-field-added-without-default",
        record(ID),
        with_f(["null", "string"]),
        False,
        True,
    ),
]

_RELATIVE_ALIAS = (
    "spec: an alias may be relative to the namespace of the name it is an alias for, so alias "
    "'R' on com.acme.S names com.acme.R; Apache Avro's Python checker compares the writer's "
    "fullname with the alias strings as written and reports name_mismatch"
)
_DECIMAL = (
    "spec: decimal logical types match only if their scales and precisions match; Apache Avro's "
    "Python checker ignores logical types and accepts bytes decimal(4,2) vs decimal(6,2)"
)

# (pair id, level) -> how Apache Avro's Python checker disagrees with the specification.
DISAGREEMENTS: dict[tuple[str, Level], str] = {
    ("record-renamed-with-relative-alias-in-namespace", Level.BACKWARD): _RELATIVE_ALIAS,
    ("decimal-precision-changed", Level.BACKWARD): _DECIMAL,
    ("decimal-precision-changed", Level.FORWARD): _DECIMAL,
    ("decimal-precision-changed", Level.FULL): _DECIMAL,
}

LEVELS = (Level.BACKWARD, Level.FORWARD, Level.FULL)


def expected(pair: Pair, level: Level) -> bool:
    if level is Level.BACKWARD:
        return pair.backward
    if level is Level.FORWARD:
        return pair.forward
    return pair.backward and pair.forward


def case(pair: Pair, level: Level) -> Any:
    reason = DISAGREEMENTS.get((pair.id, level))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(
        pair.old,
        pair.new,
        level,
        expected(pair, level),
        id=f"{pair.id}-{level.lower()}",
        marks=marks,
    )


def assert_verdict(problems: list[str], compatible: bool) -> None:
    if compatible:
        assert problems == []
    else:
        assert problems, "expected an incompatibility, the check reported none"


@pytest.mark.parametrize(
    ("old", "new", "level", "compatible"),
    [case(pair, level) for pair in PAIRS for level in LEVELS],
)
def test_pair_verdict(old: str, new: str, level: Level, compatible: bool) -> None:
    assert_verdict(check(new, [old], level), compatible)


@pytest.mark.parametrize(
    ("old", "new"), [pytest.param(p.old, p.new, id=f"{p.id}-none") for p in PAIRS]
)
def test_none_is_always_compatible(old: str, new: str) -> None:
    assert check(new, [old], Level.NONE) == []


# Two existing versions (oldest first) and a new one: each chain passes its non-transitive
# level against the latest version but fails the transitive level against the oldest; the
# int-long-double chain and NONE are the controls that pass throughout.
V1_NO_B = record(ID)
V2_B_DEFAULT = record(ID, B_STR_DEFAULT)
V3_B_REQUIRED = record(ID, B_STR)
ENUM_V1 = with_f(enum("A", "B"))
ENUM_V2 = with_f(enum("A", "B", default="A"))
ENUM_V3 = with_f(enum("A", "B", "C", default="A"))
RENAMED = [
    record(ID, field("a", "string")),
    record(ID, field("b", "string", aliases=["a"])),
    record(ID, field("c", "string", aliases=["b"])),
]

TRANSITIVE: list[tuple[str, list[str], str, Level, bool]] = [
    # b added with a default, then the default dropped: v3 cannot read v1's data.
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.BACKWARD, True),
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.BACKWARD_TRANSITIVE, False),
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.FORWARD_TRANSITIVE, True),
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.FULL, True),
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.FULL_TRANSITIVE, False),
    ("default-dropped", [V1_NO_B, V2_B_DEFAULT], V3_B_REQUIRED, Level.NONE, True),
    # b given a default, then removed: v1 cannot read v3's data.
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.FORWARD, True),
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.FORWARD_TRANSITIVE, False),
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.BACKWARD_TRANSITIVE, True),
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.FULL, True),
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.FULL_TRANSITIVE, False),
    ("field-removed", [V3_B_REQUIRED, V2_B_DEFAULT], V1_NO_B, Level.NONE, True),
    # An enum default added, then a symbol: v1 has no default to read C with.
    ("enum-symbol-added", [ENUM_V1, ENUM_V2], ENUM_V3, Level.FORWARD, True),
    ("enum-symbol-added", [ENUM_V1, ENUM_V2], ENUM_V3, Level.FORWARD_TRANSITIVE, False),
    ("enum-symbol-added", [ENUM_V1, ENUM_V2], ENUM_V3, Level.FULL, True),
    ("enum-symbol-added", [ENUM_V1, ENUM_V2], ENUM_V3, Level.FULL_TRANSITIVE, False),
    # a renamed to b, then b to c: c's alias reaches b but not a.
    ("field-renamed-twice", RENAMED[:2], RENAMED[2], Level.BACKWARD, True),
    ("field-renamed-twice", RENAMED[:2], RENAMED[2], Level.BACKWARD_TRANSITIVE, False),
    # int, long, double: promotion reaches every older version.
    ("int-long-double", [with_f("int"), with_f("long")], with_f("double"), Level.BACKWARD, True),
    (
        "int-long-double",
        [with_f("int"), with_f("long")],
        with_f("double"),
        Level.BACKWARD_TRANSITIVE,
        True,
    ),
]

TRANSITIVE_DISAGREEMENTS: dict[tuple[str, Level], str] = {}


def transitive_case(
    name: str, existing: list[str], new: str, level: Level, compatible: bool
) -> Any:
    reason = TRANSITIVE_DISAGREEMENTS.get((name, level))
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(existing, new, level, compatible, id=f"{name}-{level.lower()}", marks=marks)


@pytest.mark.parametrize(
    ("existing", "new", "level", "compatible"), [transitive_case(*row) for row in TRANSITIVE]
)
def test_three_versions(existing: list[str], new: str, level: Level, compatible: bool) -> None:
    problems = check(new, existing, level)
    assert_verdict(problems, compatible)
    if level.transitive:
        # Every transitive failure in the table is against the oldest version only.
        assert all("(version index 0)" in problem for problem in problems), problems


def test_table_is_well_formed() -> None:
    ids = [pair.id for pair in PAIRS]
    assert len(ids) == len(set(ids)), "pair ids must be unique"
    assert len(PAIRS) >= 30
    assert {pair_id for pair_id, _ in DISAGREEMENTS} <= set(ids)
    assert {name for name, _ in TRANSITIVE_DISAGREEMENTS} <= {row[0] for row in TRANSITIVE}


def test_a_refusal_names_each_kind_once_and_each_field_once() -> None:
    """Found by a new user: a 409 read "reader_field_missing_default_value,
    reader_field_missing_default_value, ... (six times) at app_version, client_ts, ...:
    app_version; client_ts; ..." (the kind once per field, and the fields twice)."""
    import json

    old = json.dumps({"type": "record", "name": "E", "fields": [{"name": "x", "type": "int"}]})
    new = json.dumps({"type": "record", "name": "E", "fields": [
        {"name": "x", "type": "int"}, {"name": "a", "type": "string"},
        {"name": "b", "type": "long"}]})  # fmt: skip
    (problem,) = check(new, [old], Level.BACKWARD)
    assert problem == (
        "new schema cannot read old data: reader_field_missing_default_value at a, b"
    ), problem
