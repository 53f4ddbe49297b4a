"""The attribute a schema lacks, named where it lacks it (serde/schema_shape.py)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlearn.serde.exceptions import InvalidSchemaError
from streamlearn.serde.resolution import parse_avro_schema
from streamlearn.serde.schema_shape import missing_attribute

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"name": "x"}, 'the schema: "type" is required'),
        ({"type": "array"}, 'the schema: an array needs "items"'),
        ({"type": "fixed", "name": "F"}, 'fixed F: "size" is required'),
        ({"type": "record", "name": "X"}, 'record X: "fields" is required'),
        ({"type": "record", "name": "X", "fields": {}}, 'record X: "fields" must be a list'),
        ({"type": "record", "name": "X", "fields": [3]}, "record X: field 0 must be an object"),
        (
            {"type": "record", "name": "X", "fields": [{"name": "a", "type": {"type": "array"}}]},
            'record X, field a: an array needs "items"',
        ),
        (["null", {"type": "enum", "name": ""}], "the schema, union branch 1: an enum needs"),
    ],
)
def test_the_first_missing_attribute_is_named(schema: Any, problem: str) -> None:
    found = missing_attribute(schema)
    assert found is not None
    assert found.startswith(problem), found


def test_a_complete_schema_lacks_nothing_and_other_problems_keep_the_parsers_words() -> None:
    whole = {
        "type": "record", "name": "X",
        "fields": [{"name": "a", "type": ["null", {"type": "map", "values": "long"}]}],
    }  # fmt: skip
    assert missing_attribute(whole) is None
    with pytest.raises(InvalidSchemaError, match="Undefined type: nope"):
        parse_avro_schema('{"type": "nope"}')
