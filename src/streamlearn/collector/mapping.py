"""JSON from browsers and apps → ``TelemetryEvent`` / ``Feedback`` records, field by field.

An item with a ``request_id`` is feedback on a prediction, any other item is an event.
Every problem names the field (``[3].properties.price``) so the sender can fix it; the
record dictionaries returned are ready for :class:`~streamlearn.serde.AvroSerde`.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.json_kinds import json_kind

EVENT_FIELDS = frozenset(
    {"event_id", "event_type", "user_id", "session_hint", "client_ts", "url", "referrer",
     "user_agent", "app_version", "properties", "context"}
)  # fmt: skip
FEEDBACK_FIELDS = frozenset(
    {"request_id", "event_id", "kind", "value", "user_id", "client_ts", "app_version",
     "properties", "user_agent"}
)  # fmt: skip
FEEDBACK_KINDS = frozenset({"impression", "click", "conversion", "value", "dismiss"})
MAX_STRING = 8192
EARLIEST_MS = -62_135_596_800_000 + 86_400_000
"""The earliest client time taken as epoch milliseconds: 0001-01-02 (a day clear of year 0
in any zone)."""
LATEST_MS = 253_402_300_799_999 - 86_400_000
"""The latest: 9999-12-30 (a day clear of year 10000)."""
EDGE_DAYS = frozenset({date(1, 1, 1), date(9999, 12, 31)})
"""Days refused in ISO 8601 client times (as the document's pattern says): in some zones
they are outside the years a timestamp can hold."""


@dataclass(frozen=True)
class RequestContext:
    """What the collector knows about the request, stamped on every item."""

    received_ts: datetime
    ip: str | None
    user_agent: str | None
    app_version: str | None


@dataclass(frozen=True)
class Mapped:
    kind: str  # "event" or "feedback"
    key: str
    record: dict[str, Any]


def _string(item: Mapping[str, Any], name: str, where: str, *, required: bool) -> str | None:
    value = item.get(name)
    if value is None:
        if required:
            raise InvalidEventError(f"{where}.{name}", "is required")
        return None
    if not isinstance(value, str):
        raise InvalidEventError(f"{where}.{name}", f"must be a string, got {json_kind(value)}")
    if required and not value.strip():
        raise InvalidEventError(f"{where}.{name}", "must not be empty")
    if len(value) > MAX_STRING:
        raise InvalidEventError(f"{where}.{name}", f"is longer than {MAX_STRING} characters")
    return value


def _number(item: Mapping[str, Any], name: str, where: str) -> float | None:
    """A finite number that fits a double (a label sums them: one inf or NaN would spoil
    the label of every prediction it joins), or None when absent."""
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEventError(f"{where}.{name}", "must be a number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise InvalidEventError(f"{where}.{name}", "must be finite, within a double's range")
    return number


def unencodable_field(item: Any, index: int) -> str | None:
    """The first field of ``item`` whose text is not Unicode (a lone surrogate, which
    JSON's ``\\ud800`` escapes can write and UTF-8 cannot), or None."""
    if not isinstance(item, dict):
        return None
    for name, value in item.items():
        texts = value.items() if isinstance(value, dict) else [(None, value)]
        for key, text in texts:
            for part in (key, text):
                if isinstance(part, str) and not _encodes(part):
                    return f"[{index}].{name}" if key is None else f"[{index}].{name}.{key}"
    return None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _timestamp(item: Mapping[str, Any], name: str, where: str, default: datetime) -> datetime:
    """ISO 8601 text (with a zone) or epoch milliseconds; absent → ``default``."""
    value = item.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        raise InvalidEventError(f"{where}.{name}", "must be ISO 8601 text or epoch milliseconds")
    if isinstance(value, int | float):
        # The range the collector's document declares (NaN is in no range).
        if not EARLIEST_MS <= value <= LATEST_MS:
            raise InvalidEventError(
                f"{where}.{name}",
                f"is out of range (epoch milliseconds from {EARLIEST_MS} to {LATEST_MS})",
            )
        return datetime.fromtimestamp(value / 1000, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEventError(f"{where}.{name}", f"{value!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            raise InvalidEventError(f"{where}.{name}", "needs a time zone (e.g. Z)")
        if parsed.date() in EDGE_DAYS:
            # A zone can move these out of the years a timestamp holds (0001-01-01T00:00+01:00
            # is in year 0 in UTC): their first and last day are refused, as documented.
            raise InvalidEventError(f"{where}.{name}", "is out of range (0001-01-02 to 9999-12-30)")
        return parsed.astimezone(UTC)
    raise InvalidEventError(f"{where}.{name}", "must be ISO 8601 text or epoch milliseconds")


def _string_map(item: Mapping[str, Any], name: str, where: str) -> dict[str, str]:
    value = item.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidEventError(f"{where}.{name}", "must be an object of strings")
    for key, entry in value.items():
        if not isinstance(entry, str):
            raise InvalidEventError(
                f"{where}.{name}.{key}", f"must be a string, got {json_kind(entry)}"
            )
    return dict(value)


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A UUID already as ``str(uuid.UUID(...))`` writes it: lowercase, hyphenated."""


def _event_id(item: Mapping[str, Any], where: str) -> str:
    """The item's ``event_id`` in the canonical form (any form ``uuid.UUID`` reads), or a
    new one. What SDKs send is already canonical, and is taken as it is: matching it costs
    a tenth of parsing it and formatting it back, which gives the same string."""
    value = _string(item, "event_id", where, required=False)
    if value is None:
        return str(uuid.uuid4())
    if _CANONICAL_UUID.fullmatch(value):
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidEventError(f"{where}.event_id", f"{value!r} is not a UUID") from None


def _check_unknown(
    item: Mapping[str, Any], known: frozenset[str], where: str, reject: bool
) -> None:
    if reject:
        unknown = sorted(set(item) - known)
        if unknown:
            raise InvalidEventError(f"{where}.{unknown[0]}", "is not a known field")


def map_item(item: Any, index: int, context: RequestContext, *, reject_unknown: bool) -> Mapped:
    where = f"[{index}]"
    if not isinstance(item, dict):
        raise InvalidEventError(where, "must be a JSON object")
    given = _string(item, "app_version", where, required=False)
    # Blank is absent, as empty always was: the header's then (one of spaces was refused
    # with "send X-App-Version" from a request that sent it).
    app_version = given if given and given.strip() else context.app_version
    if app_version is None or not app_version.strip():
        raise InvalidEventError(f"{where}.app_version", "is required (or send X-App-Version)")
    if "request_id" in item:
        # Its own field first: a null request id is the mistake, not the fields beside it.
        request_id = _string(item, "request_id", where, required=True)
        _check_unknown(item, FEEDBACK_FIELDS, where, reject_unknown)
        kind = _string(item, "kind", where, required=True)
        if kind not in FEEDBACK_KINDS:
            raise InvalidEventError(f"{where}.kind", f"must be one of {sorted(FEEDBACK_KINDS)}")
        value = _number(item, "value", where)
        assert request_id is not None
        return Mapped(
            "feedback",
            request_id,
            {
                "request_id": request_id,
                "event_id": _event_id(item, where),
                "kind": kind,
                "value": value,
                "user_id": _string(item, "user_id", where, required=False),
                "client_ts": _timestamp(item, "client_ts", where, context.received_ts),
                "received_ts": context.received_ts,
                "app_version": app_version,
                "properties": _string_map(item, "properties", where),
                "user_agent": _string(item, "user_agent", where, required=False)
                or context.user_agent,
            },
        )
    _check_unknown(item, EVENT_FIELDS, where, reject_unknown)
    user_id = _string(item, "user_id", where, required=True)
    assert user_id is not None
    return Mapped(
        "event",
        user_id,
        {
            "event_id": _event_id(item, where),
            "event_type": _string(item, "event_type", where, required=True),
            "user_id": user_id,
            "session_hint": _string(item, "session_hint", where, required=False),
            "client_ts": _timestamp(item, "client_ts", where, context.received_ts),
            "received_ts": context.received_ts,
            "url": _string(item, "url", where, required=False),
            "referrer": _string(item, "referrer", where, required=False),
            "user_agent": _string(item, "user_agent", where, required=False) or context.user_agent,
            "ip": context.ip,
            "app_version": app_version,
            "properties": _string_map(item, "properties", where),
            "context": _string_map(item, "context", where),
        },
    )


def checked_text(value: object, field: str, *, required: bool) -> str | None:
    """``value`` as the collector takes text field ``field`` (not empty or only white space
    when required, at most :data:`MAX_STRING` characters); :class:`InvalidEventError`
    naming ``field`` otherwise. For the app SDK, which refuses what the collector would."""
    return _string({field: value}, field, "item", required=required)


def checked_client_time(value: object, default: datetime) -> datetime:
    """``value`` as the collector takes ``client_ts``: ISO 8601 text with a zone or epoch
    milliseconds, within the years a timestamp holds; ``default`` when None."""
    return _timestamp({"client_ts": value}, "client_ts", "item", default)
