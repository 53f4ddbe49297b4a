"""Avro in the Confluent wire format, shared by every producer and consumer of streamlearn."""

from streamlearn.serde.avro import AvroSerde, SchemaSource, value_subject
from streamlearn.serde.exceptions import (
    BadMagicByteError,
    DecodeError,
    EncodeError,
    NullValueError,
    RegistryUnavailableError,
    SchemaNotFoundError,
    SerdeError,
    TruncatedRecordError,
    UnknownSchemaIdError,
    UnresolvableSchemaError,
)
from streamlearn.serde.memory import InMemoryRegistry
from streamlearn.serde.registry_client import RegistryClient
from streamlearn.serde.schemas import NAMESPACE, load_schema, schema_names, schema_text
from streamlearn.serde.wire import frame, unframe

__all__ = [
    "NAMESPACE",
    "AvroSerde",
    "BadMagicByteError",
    "DecodeError",
    "EncodeError",
    "InMemoryRegistry",
    "NullValueError",
    "RegistryClient",
    "RegistryUnavailableError",
    "SchemaNotFoundError",
    "SchemaSource",
    "SerdeError",
    "TruncatedRecordError",
    "UnknownSchemaIdError",
    "UnresolvableSchemaError",
    "frame",
    "load_schema",
    "schema_names",
    "schema_text",
    "unframe",
    "value_subject",
]
