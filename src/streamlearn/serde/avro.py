"""Encode and decode records as Avro in the Confluent wire format.

:class:`AvroSerde` is what every producer and consumer of streamlearn uses: it registers
its schema under ``<topic>-value`` (topic-name strategy), writes framed Avro, and reads any
writer version with Avro's schema resolution into its reader schema. Parsed schemas and
resolution verdicts are cached per schema id, so the per-record cost stays close to plain
fastavro (see ``bench/serde.py``). Records are written by an encoder compiled for the schema
(:mod:`streamlearn.serde.compiled_encoder`, the same bytes for plainly typed records, ~3x
faster on a ``TrainingExample``) and by fastavro for whatever it declines. Compiled
encoders and decoders are shared by every serde of the same schema in the process
(compiling one costs milliseconds: a test that made a serde per record spent 95 % of its
time there).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Collection, Hashable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import fastavro
from fastavro.read import SchemaResolutionError
from fastavro.validation import ValidationError, validate

from streamlearn.serde.compiled import Decoder, compile_decoder
from streamlearn.serde.compiled_encoder import Encoder, compile_encoder
from streamlearn.serde.exceptions import (
    DecodeError,
    EncodeError,
    SerdeError,
    TruncatedRecordError,
    UnresolvableSchemaError,
)
from streamlearn.serde.resolution import parse_avro_schema, resolution_problems
from streamlearn.serde.schemas import load_schema
from streamlearn.serde.wire import HEADER, HEADER_SIZE, MAGIC_BYTE, framed_schema_id, unframe

_Compiled = TypeVar("_Compiled")


class SchemaSource(Protocol):
    """Where the serde registers schemas and finds writer schemas by id."""

    def register(self, subject: str, schema_str: str) -> int: ...

    def latest(self, subject: str) -> tuple[int, str]: ...

    def schema_by_id(self, schema_id: int) -> dict[str, Any]: ...


def value_subject(topic: str) -> str:
    """The registry subject of a topic's values under the topic-name strategy."""
    return f"{topic}-value"


class AvroSerde:
    """Encoder and decoder of one record type (its reader/writer schema) for one subject."""

    def __init__(
        self,
        registry: SchemaSource,
        schema: dict[str, Any] | str,
        subject: str,
        *,
        auto_register: bool = True,
        logical_types: bool = True,
        compiled: bool = True,
        fields: Collection[str] | None = None,
    ) -> None:
        self.registry = registry
        self.subject = subject
        self.schema: dict[str, Any] = load_schema(schema) if isinstance(schema, str) else schema
        self._schema_json = json.dumps(self.schema, separators=(",", ":"))
        self._logical_types = logical_types
        self._parsed = self._parse(self.schema)
        self._projection = None if fields is None else _projection(self.schema, fields)
        """The fields :meth:`decode` returns (schema order), None for all of them."""
        kept = self._projection
        self._projected = (
            None
            if kept is None
            else self._parse(
                {**self.schema, "fields": [f for f in self.schema["fields"] if f["name"] in kept]}
            )
        )
        """The reader schema of a projection: fastavro reads past the other fields."""
        self._auto_register = auto_register
        self._schema_id: int | None = None
        self._header: bytes = b""
        # writer schema id -> parsed writer schema and the reader to resolve into
        # (None when writer == reader, which skips fastavro's per-record resolution).
        self._readers: dict[int, tuple[Any, Any]] = {}
        # writer schema id -> decoder compiled for it (serde/compiled.py), for writers equal
        # to the reader schema; tried before fastavro, which decides whenever it declines.
        self._compiled: dict[int, Decoder] = {}
        self._compiling = compiled
        """False: fastavro alone (the tests compare the two paths)."""
        self._encoder: Encoder | None = None
        """The encoder compiled for the schema (serde/compiled_encoder.py), made with the
        header; tried before fastavro, which writes (or explains) what it declines."""

    @classmethod
    def for_topic(
        cls,
        registry: SchemaSource,
        topic: str,
        schema_name: str,
        *,
        logical_types: bool = True,
        fields: Collection[str] | None = None,
    ) -> AvroSerde:
        """``logical_types=False`` decodes timestamps as the longs they are on the wire
        (no ``datetime`` per field: a reader that does not look at them, e.g. a replay's
        learner, saves about 40 % of the decode). ``fields``: decoded records hold these
        fields only, the others are read past (a projection, as Avro's schema resolution
        reads a record with a reader schema that lacks them); encoding is unchanged."""
        return cls(
            registry, schema_name, value_subject(topic), logical_types=logical_types, fields=fields
        )

    def _parse(self, schema: dict[str, Any]) -> Any:
        return fastavro.parse_schema(schema if self._logical_types else _plain(schema))

    @property
    def schema_id(self) -> int:
        """The id records are written with (registers the schema on first use)."""
        if self._schema_id is None:
            if self._auto_register:
                schema_id = self.registry.register(self.subject, self._schema_json)
            else:
                schema_id, _ = self.registry.latest(self.subject)
            self._schema_id = schema_id
            self._header = HEADER.pack(MAGIC_BYTE, schema_id)
            self._readers[schema_id] = (self._parsed, self._projected)
            self._compile(schema_id)
            if self._compiling:
                key = (self._schema_json, self._logical_types, self._header)
                self._encoder = _shared(_ENCODERS, key, compile_encoder, self._parsed, self._header)
        return self._schema_id

    def _compile(self, schema_id: int) -> None:
        if not self._compiling:
            return
        key = (self._schema_json, self._logical_types, self._projection)
        decoder = _shared(_DECODERS, key, compile_decoder, self._parsed, self._projection)
        if decoder is not None:
            self._compiled[schema_id] = decoder

    def decoding_plan(self) -> DecodingPlan | None:
        """What another process needs to decode this serde's records as :meth:`decode`'s
        compiled path does (:mod:`streamlearn.serde.decoding_process`); None when there is
        no compiled decoder, or its records hold values only pickle could carry
        (timestamps as ``datetime``: logical types)."""
        if self._logical_types or not self._compiled:
            return None
        return DecodingPlan(self.schema, self._projection, tuple(sorted(self._compiled)))

    def encode(self, record: dict[str, Any]) -> bytes:
        """Framed Avro bytes of ``record``; :class:`EncodeError` names the offending field."""
        if self._schema_id is None:
            _ = self.schema_id
        encoder = self._encoder
        if encoder is not None:
            try:
                return encoder(record)
            except Exception:  # noqa: S110 - declined: fastavro writes or explains it
                pass
        buffer = io.BytesIO()
        buffer.write(self._header)
        try:
            fastavro.schemaless_writer(buffer, self._parsed, record)
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            raise EncodeError(
                self._explain_invalid(record, exc), schema_id=self._schema_id
            ) from exc
        return buffer.getvalue()

    def _explain_invalid(self, record: object, exc: Exception) -> str:
        if not isinstance(record, dict):
            return f"{self.schema.get('name')} must be a mapping, got {type(record).__name__}"
        try:
            validate(record, self._parsed, raise_errors=True)
        except ValidationError as invalid:
            return f"invalid {self.schema.get('name')}: " + "; ".join(map(str, invalid.errors))
        return f"invalid {self.schema.get('name')}: {exc}"

    def knows_writer(self, schema_id: int) -> bool:
        """Whether records of writer ``schema_id`` decode without asking the registry."""
        return schema_id in self._readers

    def look_up_writer(self, schema_id: int) -> None:
        """Fetch writer ``schema_id`` from the registry and prepare its reader now.
        :class:`RegistryUnavailableError` if the registry cannot answer; an id that
        :meth:`decode` rejects (not registered, not resolvable) is left to it."""
        with contextlib.suppress(DecodeError):
            self._reader_for(schema_id)

    def _reader_for(self, schema_id: int) -> tuple[Any, Any]:
        cached = self._readers.get(schema_id)
        if cached is not None:
            return cached
        writer = self.registry.schema_by_id(schema_id)
        if json.dumps(writer, separators=(",", ":")) == self._schema_json:
            entry: tuple[Any, Any] = (self._parsed, self._projected)
            self._compile(schema_id)
        else:
            problems = resolution_problems(
                parse_avro_schema(self._schema_json), parse_avro_schema(json.dumps(writer))
            )
            if problems:
                raise UnresolvableSchemaError(
                    f"writer schema id {schema_id} cannot be read as "
                    f"{self.schema.get('name')}: {'; '.join(problems)}",
                    schema_id=schema_id,
                )
            entry = (self._parse(writer), self._projected or self._parsed)
        self._readers[schema_id] = entry
        return entry

    def decode(
        self,
        data: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> dict[str, Any]:
        """The record in ``data``, read with this serde's schema (resolving older writers)."""
        schema_id = framed_schema_id(data)
        if schema_id is not None:
            compiled = self._compiled.get(schema_id)
            if compiled is not None:
                try:
                    fast: dict[str, Any] = compiled(cast(bytes, data), HEADER_SIZE)
                    return fast
                except Exception:  # noqa: S110 - it declined the body: fastavro below decides
                    pass
        try:
            schema_id, body = unframe(data)
            writer, reader = self._reader_for(schema_id)
            stream = io.BytesIO(body)
            try:
                record = cast(dict[str, Any], fastavro.schemaless_reader(stream, writer, reader))
            except EOFError as exc:
                raise TruncatedRecordError(
                    f"Avro body of schema id {schema_id} ends early ({len(body)} bytes): {exc}",
                    schema_id=schema_id,
                ) from exc
            except SchemaResolutionError as exc:
                raise UnresolvableSchemaError(str(exc), schema_id=schema_id) from exc
            except (ValueError, IndexError, UnicodeDecodeError, TypeError, OverflowError) as exc:
                raise DecodeError(
                    f"invalid Avro body for schema id {schema_id}: {exc}", schema_id=schema_id
                ) from exc
            if stream.tell() != len(body):
                raise DecodeError(
                    f"{len(body) - stream.tell()} unexpected bytes after the Avro body of "
                    f"schema id {schema_id}",
                    schema_id=schema_id,
                )
        except SerdeError as exc:
            raise exc.at(topic, partition, offset) from exc.__cause__
        return record


@dataclass(frozen=True)
class DecodingPlan:
    """A serde's compiled decoding without logical types, as plain data: the reader
    schema, the fields kept (None: all) and the writer schema ids it is compiled for."""

    schema: dict[str, Any]
    fields: tuple[str, ...] | None
    schema_ids: tuple[int, ...]

    def decoder(self) -> Decoder | None:
        """The decoder :class:`AvroSerde` compiles for this plan (the same code)."""
        return compile_decoder(fastavro.parse_schema(_plain(self.schema)), self.fields)


_DECODERS: dict[Hashable, Decoder | None] = {}
_ENCODERS: dict[Hashable, Encoder | None] = {}
SHARED_LIMIT = 256
"""Compiled functions kept per kind (a process uses a few dozen schemas; a bound keeps a
long test run from keeping every one it ever saw)."""


def _shared(
    cache: dict[Hashable, _Compiled | None],
    key: Hashable,
    compile_it: Callable[[Any, Any], _Compiled | None],
    parsed: Any,
    option: Any,
) -> _Compiled | None:
    """``compile_it(parsed, option)``, made once per ``key`` (the schema's JSON, whether
    logical types are read, and ``option``: what else the compiled code depends on). The
    functions are pure, so serdes share them; None (a shape not compiled) is kept too."""
    if key in cache:
        return cache[key]
    if len(cache) >= SHARED_LIMIT:
        cache.clear()
    compiled = cache[key] = compile_it(parsed, option)
    return compiled


def _projection(schema: dict[str, Any], fields: Collection[str]) -> tuple[str, ...]:
    """``fields`` in ``schema``'s order; a name the schema does not have is a mistake."""
    names = [f["name"] for f in schema.get("fields", ())]
    unknown = sorted(set(fields) - set(names))
    if schema.get("type") != "record" or unknown:
        raise ValueError(f"{schema.get('name')} has no fields {unknown}: cannot project on them")
    return tuple(name for name in names if name in fields)


def _plain(schema: Any) -> Any:
    """``schema`` without logical types: each read as its underlying Avro type."""
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_plain(v) for v in schema]
    return schema
