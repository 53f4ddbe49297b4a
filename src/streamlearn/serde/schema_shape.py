"""The attribute an Avro schema lacks, named where it is lacking.

Apache Avro's parser reports a missing attribute in its own terms ("Name None must be a
string, but it is <class 'NoneType'>", "Type property "None" not a valid Avro schema"),
which a person registering a schema has to translate. This walk finds the first required
attribute that is absent, before the parser runs, and says which one and where; anything
else the parser still judges.
"""

from __future__ import annotations

from typing import Any

NAMED = {"record": "fields", "error": "fields", "enum": "symbols", "fixed": "size"}
CONTAINERS = {"array": "items", "map": "values"}


def missing_attribute(schema: Any) -> str | None:
    """The first required attribute ``schema`` (parsed JSON) lacks, said in words."""
    return _walk(schema, "the schema")


def _walk(node: Any, where: str) -> str | None:
    if isinstance(node, list):  # a union: each branch
        for index, branch in enumerate(node):
            problem = _walk(branch, f"{where}, union branch {index}")
            if problem is not None:
                return problem
        return None
    if not isinstance(node, dict):
        return None  # a type's name: the parser knows them
    if "type" not in node:
        return f'{where}: "type" is required'
    kind = node["type"]
    if isinstance(kind, dict | list):
        return _walk(kind, where)
    if kind in NAMED:
        name = node.get("name")
        if not isinstance(name, str) or not name:
            return f'{where}: {_article(kind)} {kind} needs a "name" (a non-empty string)'
        where = f"{kind} {name}"
        attribute = NAMED[kind]
        if attribute not in node:
            return f'{where}: "{attribute}" is required'
        if kind in ("record", "error"):
            return _fields(node["fields"], where)
        return None
    if kind in CONTAINERS:
        attribute = CONTAINERS[kind]
        if attribute not in node:
            return f'{where}: {_article(kind)} {kind} needs "{attribute}"'
        return _walk(node[attribute], f"{where}, {attribute}")
    return None


def _fields(fields: Any, where: str) -> str | None:
    if not isinstance(fields, list):
        return f'{where}: "fields" must be a list'
    for index, field in enumerate(fields):
        if not isinstance(field, dict):
            return f"{where}: field {index} must be an object"
        name = field.get("name")
        if not isinstance(name, str) or not name:
            return f'{where}: field {index} needs a "name" (a non-empty string)'
        if "type" not in field:
            return f'{where}, field {name}: "type" is required'
        problem = _walk(field["type"], f"{where}, field {name}")
        if problem is not None:
            return problem
    return None


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"
