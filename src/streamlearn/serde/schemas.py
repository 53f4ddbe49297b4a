"""The record schemas shipped in ``schemas/*.avsc``: the single source of truth."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from streamlearn.serde.exceptions import SchemaNotFoundError

NAMESPACE = "io.streamlearn"


def schema_names() -> list[str]:
    """Names of every shipped schema (file stems), sorted."""
    folder = resources.files("streamlearn") / "schemas"
    return sorted(
        p.name.removesuffix(".avsc") for p in folder.iterdir() if p.name.endswith(".avsc")
    )


@cache
def schema_text(name: str) -> str:
    """The ``.avsc`` text of a shipped schema, e.g. ``schema_text("TelemetryEvent")``."""
    path = resources.files("streamlearn") / "schemas" / f"{name}.avsc"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SchemaNotFoundError(f"no schema named {name!r}; known: {schema_names()}") from exc


def load_schema(name: str) -> dict[str, Any]:
    """The JSON of a shipped schema (a fresh copy each call: callers may not share it)."""
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


def canonical_json(schema_str: str) -> str:
    """Compact JSON of a schema, the form the registry stores and compares."""
    return json.dumps(json.loads(schema_str), separators=(",", ":"))
