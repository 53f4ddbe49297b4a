"""JSON as the standard writes it: Python's ``json`` also reads ``NaN`` and ``±Infinity``,
which JSON does not have (JavaScript's and Jackson's parsers refuse them)."""

from __future__ import annotations

import json
from typing import Any


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not a JSON value")


def loads(text: str | bytes) -> Any:
    """The JSON document in ``text``; :class:`ValueError` (``json.JSONDecodeError``, or
    one naming ``NaN``/``Infinity``) when it is not one."""
    return json.loads(text, parse_constant=_not_json)
