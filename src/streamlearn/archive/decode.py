"""Decode Confluent wire-format values with their own writer schema.

The archive keeps values as they were written, so it reads each record with the schema
its producer wrote it with (looked up by the id in its wire-format header, once per id
per process) and no reader schema: no resolution, nothing converted. Bytes that are not
a valid record of their schema raise the serde's :class:`DecodeError` subclasses, whose
``reason`` goes into the row; a registry that cannot be reached raises
:class:`RegistryUnavailableError`, which is not the record's fault and stops the agent
(the record is read again after the restart).
"""

from __future__ import annotations

import io
from typing import Any, Protocol

import fastavro

from streamlearn.archive.envelope import WriterSchema
from streamlearn.serde.exceptions import DecodeError, TruncatedRecordError
from streamlearn.serde.wire import unframe


class WriterSchemaSource(Protocol):
    """Where writer schemas are found by id (the registry client; in tests, an
    :class:`~streamlearn.serde.InMemoryRegistry`)."""

    def schema_by_id(self, schema_id: int) -> dict[str, Any]: ...


class WriterDecoder:
    """Decodes framed values of any writer schema; the schemas are cached by id."""

    def __init__(self, registry: WriterSchemaSource) -> None:
        self.registry = registry
        self._schemas: dict[int, WriterSchema] = {}

    def writer_schema(self, schema_id: int) -> WriterSchema:
        """The writer schema registered under ``schema_id`` (raises
        :class:`~streamlearn.serde.UnknownSchemaIdError` when there is none)."""
        known = self._schemas.get(schema_id)
        if known is None:
            known = WriterSchema.of(schema_id, self.registry.schema_by_id(schema_id))
            self._schemas[schema_id] = known
        return known

    def decode(self, data: bytes) -> tuple[WriterSchema, Any]:
        """The writer schema of ``data`` and its value (fastavro's form: logical types
        as datetimes, UUIDs, dates...)."""
        schema_id, body = unframe(data)
        writer = self._schemas.get(schema_id) or self.writer_schema(schema_id)
        stream = io.BytesIO(body)
        try:
            value = fastavro.schemaless_reader(stream, writer.decoder, None)
        except EOFError as exc:
            raise TruncatedRecordError(
                f"Avro body of schema id {schema_id} ends early ({len(body)} bytes): {exc}",
                schema_id=schema_id,
            ) from exc
        except Exception as exc:  # any failure to parse the body: these bytes are bad
            raise DecodeError(
                f"invalid Avro body for schema id {schema_id}: {exc}", schema_id=schema_id
            ) from exc
        if stream.tell() != len(body):
            raise DecodeError(
                f"{len(body) - stream.tell()} unexpected bytes after the Avro body of "
                f"schema id {schema_id}",
                schema_id=schema_id,
            )
        return writer, value
