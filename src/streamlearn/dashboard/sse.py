"""Server-sent events: the wire format of ``GET /api/events``.

An event is ``event:``, optional ``id:`` and ``data:`` lines and a blank line; data is one
line of JSON (a JSON text has no raw newline once compact, but every line of a multi-line
string is still framed correctly). ``retry:`` tells the browser's ``EventSource`` how soon
to reconnect after the connection drops; on reconnecting it gets the whole state again.
"""

from __future__ import annotations

import json
from typing import Any


def encode_json(payload: Any) -> str:
    """Compact JSON; refuses NaN and infinity (the page's ``JSON.parse`` would)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def sse_event(event: str, data: str, event_id: str | None = None) -> bytes:
    """One event: ``event``, an optional ``id`` and ``data`` (split into ``data:`` lines)."""
    if "\n" in event or "\r" in event or (event_id is not None and "\n" in event_id):
        raise ValueError("an event name or id cannot contain a newline")
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"data: {line}" for line in data.replace("\r\n", "\n").split("\n")]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def sse_json(event: str, payload: Any, event_id: str | None = None) -> bytes:
    return sse_event(event, encode_json(payload), event_id)


def sse_retry(milliseconds: int) -> bytes:
    """How long the browser waits before reconnecting."""
    return f"retry: {int(milliseconds)}\n\n".encode()


def sse_comment(text: str = "") -> bytes:
    """A comment line: ignored by the browser, keeps proxies from timing the stream out."""
    return f": {text}\n\n".encode()
