"""The Confluent wire format: magic byte 0, a 4-byte big-endian schema id, the Avro body."""

from __future__ import annotations

import struct

from streamlearn.serde.exceptions import BadMagicByteError, NullValueError, TruncatedRecordError

MAGIC_BYTE = 0
HEADER = struct.Struct(">bI")
HEADER_SIZE = HEADER.size
_SCHEMA_ID = struct.Struct(">I")


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC_BYTE, schema_id) + body


def framed_schema_id(data: object) -> int | None:
    """The schema id of a framed record with a body; None for anything else, which
    :func:`unframe` explains."""
    if type(data) is bytes and len(data) > HEADER_SIZE and data[0] == MAGIC_BYTE:
        schema_id: int = _SCHEMA_ID.unpack_from(data, 1)[0]
        return schema_id
    return None


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split a framed record into its schema id and Avro body (no copy)."""
    if data is None:
        raise NullValueError("record has no value (null): a tombstone on a topic of values")
    if len(data) < HEADER_SIZE:
        raise TruncatedRecordError(
            f"record of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte wire-format header"
        )
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise BadMagicByteError(
            f"first byte is {magic & 0xFF:#04x}, not the wire format's magic byte 0x00 "
            "(not Confluent-framed Avro)"
        )
    return schema_id, memoryview(data)[HEADER_SIZE:]
