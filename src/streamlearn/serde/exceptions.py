"""Errors of encoding and decoding Avro in the Confluent wire format.

Decoding errors carry where the record came from (topic, partition, offset) when the caller
knows it, and a short machine-readable ``reason`` that agents copy into ``events.rejected``.
"""

from __future__ import annotations

from streamlearn.exceptions import StreamlearnError


class SerdeError(StreamlearnError):
    """A record could not be encoded or decoded."""

    reason = "serde_error"

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        schema_id: int | None = None,
    ) -> None:
        self.detail = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.schema_id = schema_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = ""
        if self.topic is not None:
            where = f"{self.topic}"
            if self.partition is not None:
                where += f"[{self.partition}]"
            if self.offset is not None:
                where += f"@{self.offset}"
            where += ": "
        return f"{where}{self.detail}"

    def at(self, topic: str | None, partition: int | None, offset: int | None) -> SerdeError:
        """The same error with the record's position filled in (returns self)."""
        self.topic, self.partition, self.offset = topic, partition, offset
        self.args = (self._describe(),)
        return self


class DecodeError(SerdeError):
    """Bytes that are not a valid record (a poison record: route it to events.rejected)."""

    reason = "undecodable"


class BadMagicByteError(DecodeError):
    reason = "bad_magic_byte"


class TruncatedRecordError(DecodeError):
    reason = "truncated_body"


class NullValueError(TruncatedRecordError):
    """A record without a value (a tombstone) on a topic of values: no bytes at all, not a
    body cut short (it was reported as ``truncated_body``)."""

    reason = "null_value"


class UnknownSchemaIdError(DecodeError):
    reason = "unknown_schema_id"


class UnresolvableSchemaError(DecodeError):
    """The writer's schema cannot be read with the reader's schema (Avro resolution fails)."""

    reason = "unresolvable_schema"


class EncodeError(SerdeError):
    """A record does not match its schema (a field is missing or of the wrong type)."""

    reason = "invalid_record"


class RegistryUnavailableError(SerdeError):
    """The schema registry could not be reached or answered with an error."""

    reason = "registry_unavailable"


class InvalidSchemaError(StreamlearnError):
    """A text that is not a valid Avro schema."""


class SchemaNotFoundError(StreamlearnError):
    """No ``schemas/<name>.avsc`` exists."""
