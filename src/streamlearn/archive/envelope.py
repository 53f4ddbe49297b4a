"""The row of an archive file: a Kafka record's metadata around its decoded value.

Every row is one Kafka record. The value is kept as a nested record (field ``value``) of
the writer's own schema rather than flattened beside the metadata, so a value field can
never clash with a metadata field and the writer schema is embedded in the file unchanged
(an Avro reader reads the values exactly as they were produced, logical types included).
A file holds values of one writer schema; the agent starts a new file when the schema id
changes (see :mod:`streamlearn.archive.partition`).

Fields (Avro; Parquet has the same columns):

========================  ==============================================================
``topic``                 Kafka topic name (namespace prefix included)
``partition``             partition
``offset``                offset
``timestamp``             the Kafka record timestamp (UTC ms), null when not available
``timestamp_type``        ``CREATE_TIME``, ``LOG_APPEND_TIME`` or ``NOT_AVAILABLE``
``key``                   key bytes as read (null: no key)
``headers``               record headers as (key, value) pairs, null when none
``schema_id``             registry id of the value's writer schema (null: not decoded)
``value``                 the decoded value (null: undecodable or a null value)
``raw``                   the value's bytes as read, only when they could not be decoded
``error``                 why not (``bad_magic_byte``, ``truncated_body``,
                          ``unknown_schema_id``, ``undecodable``...), else null
``error_detail``          the decoder's message, else null
========================  ==============================================================

A record whose value is null (a tombstone) has ``value``, ``raw`` and ``error`` null.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import fastavro

NAMESPACE = "io.streamlearn.archive"
TIMESTAMP_TYPES = ("NOT_AVAILABLE", "CREATE_TIME", "LOG_APPEND_TIME")
"""Index: confluent-kafka's ``TIMESTAMP_*`` constants."""

_NAMED = ("record", "enum", "fixed")


def _value_type(writer_schema: Any) -> Any:
    """The ``value`` field's type: the writer schema made nullable."""
    if writer_schema is None or writer_schema == "null":
        return "null"
    if isinstance(writer_schema, list):  # a union already: add null to its branches
        return writer_schema if "null" in writer_schema else ["null", *writer_schema]
    schema = copy.deepcopy(writer_schema)
    # Nested in the envelope, a name without a namespace would inherit ours and change;
    # the empty namespace keeps the writer's full name.
    if (
        isinstance(schema, dict)
        and schema.get("type") in _NAMED
        and "namespace" not in schema
        and "." not in schema["name"]
    ):
        schema["namespace"] = ""
    return ["null", schema]


def _value_layout(writer_schema: Any) -> tuple[bytes, int] | None:
    """How a value's Avro body (its encoding in ``writer_schema``, as in the wire format)
    becomes the encoding of the envelope's ``value`` field (:func:`_value_type`) holding
    it: ``(prefix, shift)``, the body preceded by ``prefix`` (the union index of a value
    that is not a union itself) and, for a union, the writer's own branch index moved by
    ``shift`` (the null branch the envelope puts first). None: no body to copy."""
    if writer_schema is None or writer_schema == "null":
        return None
    if isinstance(writer_schema, list):
        return (b"", 0) if "null" in writer_schema else (b"", 1)
    return (b"\x02", 0)  # branch 1 of ["null", schema]


def envelope_schema(writer_schema: Any) -> dict[str, Any]:
    """The Avro schema of an archive file whose values have ``writer_schema`` (None: a
    file whose records have no decodable value)."""
    return {
        "type": "record",
        "name": "ArchivedRecord",
        "namespace": NAMESPACE,
        "doc": "A Kafka record as archived by streamlearn: its metadata and its value.",
        "fields": [
            {"name": "topic", "type": "string"},
            {"name": "partition", "type": "int"},
            {"name": "offset", "type": "long"},
            {
                "name": "timestamp",
                "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            },
            {
                "name": "timestamp_type",
                "type": {"type": "enum", "name": "TimestampType", "symbols": list(TIMESTAMP_TYPES)},
            },
            {"name": "key", "type": ["null", "bytes"]},
            {
                "name": "headers",
                "type": [
                    "null",
                    {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "Header",
                            "fields": [
                                {"name": "key", "type": "string"},
                                {"name": "value", "type": ["null", "bytes"]},
                            ],
                        },
                    },
                ],
            },
            {"name": "schema_id", "type": ["null", "int"]},
            {"name": "value", "type": _value_type(writer_schema)},
            {"name": "raw", "type": ["null", "bytes"]},
            {"name": "error", "type": ["null", "string"]},
            {"name": "error_detail", "type": ["null", "string"]},
        ],
    }


@dataclass(frozen=True, slots=True)
class WriterSchema:
    """A value schema as the registry holds it under one id, ready to decode and write."""

    schema_id: int
    schema: Any
    """The writer schema (JSON) as registered."""
    decoder: Any
    """``schema`` parsed for fastavro. Values are decoded with their logical types (as
    every reader of the file will): a value whose logical type cannot be read (a UUID
    field holding another string, a timestamp beyond year 9999) is undecodable here,
    instead of making the whole file unreadable later."""
    envelope: dict[str, Any]
    """The archive row schema around ``schema`` (JSON, not parsed: fastavro writes a
    parsed schema into a file's header without the empty namespaces that keep a writer
    schema's own names, see :func:`_value_type`)."""
    value_branch: str | None
    """The full name of the value's branch in the envelope's ``value`` union, when the
    value is a named type: rows give the value as ``(name, value)`` so fastavro writes that
    branch without checking the value against every branch first."""
    value_layout: tuple[bytes, int] | None = None
    """How a value's Avro body in ``schema`` becomes the envelope's ``value`` field, so
    a decoded value is written by copying its bytes instead of encoding it again: see
    :func:`_value_layout`."""

    @classmethod
    def of(cls, schema_id: int, schema: Any) -> WriterSchema:
        envelope = envelope_schema(schema)
        parsed: Any = fastavro.parse_schema(envelope)
        value_type = next(f["type"] for f in parsed["fields"] if f["name"] == "value")
        branch = None
        if isinstance(value_type, list) and len(value_type) == 2:
            named = value_type[1]
            if isinstance(named, dict) and named.get("type") in _NAMED:
                branch = named["name"]
        decoder = fastavro.parse_schema(copy.deepcopy(schema))
        return cls(schema_id, schema, decoder, envelope, branch, _value_layout(schema))


UNDECODED_ENVELOPE = envelope_schema(None)
"""The row schema of a file that holds no decoded value (its first records were
undecodable or null)."""
