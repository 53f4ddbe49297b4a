"""What a decoded JSON value is, in JSON's words, for the errors the HTTP servers answer
(the client wrote JSON: ``got null``, not Python's ``NoneType``)."""

from __future__ import annotations

from typing import Any


def json_kind(value: Any) -> str:
    """``null``, ``boolean``, ``number``, ``string``, ``array`` or ``object``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
