"""Schema registry access for the serde: confluent-kafka's client, with our errors and caches.

confluent-kafka's ``SchemaRegistryClient`` speaks the Confluent REST API to any compatible
registry (ours, Confluent, Karapace, Redpanda, Apicurio); this wrapper adds what the hot
path needs: parsed writer schemas cached by id, and errors turned into the serde's typed
errors so agents can route records to ``events.rejected``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streamlearn.serde.exceptions import RegistryUnavailableError, UnknownSchemaIdError

if TYPE_CHECKING:
    from streamlearn.settings import Settings

_SCHEMA_NOT_FOUND = 40403


class RegistryClient:
    """Register schemas and fetch writer schemas by id, each at most once per process."""

    def __init__(
        self, url: str, *, client: SchemaRegistryClient | None = None, logged_in: bool = False
    ) -> None:
        self.url = url
        self._client = client or SchemaRegistryClient({"url": url})
        self.logged_in = logged_in
        """Whether it sends a login (``STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH``)."""
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, dict[str, Any]] = {}

    @classmethod
    def for_settings(cls, settings: Settings, *, retries: int | None = None) -> RegistryClient:
        """The client of ``settings``' registry, with its basic auth and CA when set;
        ``retries``: how often an answer of 5xx, 408 or 429 is asked again (None:
        confluent-kafka's 3)."""
        config: dict[str, Any] = {"url": settings.schema_registry_url}
        if retries is not None:
            config["max.retries"] = retries
        if settings.schema_registry_basic_auth is not None:
            config["basic.auth.user.info"] = settings.schema_registry_basic_auth.get_secret_value()
        if settings.http_tls_cafile is not None:  # a registry served over TLS by a private CA
            config["ssl.ca.location"] = str(settings.http_tls_cafile)
        return cls(
            settings.schema_registry_url,
            client=SchemaRegistryClient(config),
            logged_in=settings.schema_registry_basic_auth is not None,
        )

    def close(self) -> None:
        """Close the HTTP connections (the caches stay usable)."""
        self._client.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def client(self) -> SchemaRegistryClient:
        """The underlying confluent-kafka client (for admin calls the serde does not need)."""
        return self._client

    def _said(self, exc: SchemaRegistryError) -> str:
        """A registry's refusal: its message and code, or what answered instead (a web
        server that is no registry answers without them: "None (None)")."""
        if exc.error_message is None or exc.error_code in (None, -1):
            return (
                f"answered HTTP {exc.http_status_code} without a schema registry's error: "
                f"is {self.url} one?"
            )
        said = f"{exc.error_message} ({exc.error_code})"
        if exc.http_status_code in (401, 403):
            given = "the one set is refused" if self.logged_in else "none is set"
            said += (
                "; check STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH, a registry writer's "
                f"user:password ({given})"
            )
        return said

    def register(self, subject: str, schema_str: str) -> int:
        """The schema's id under ``subject``: looked up (a read), registered only when the
        subject does not have it. A registry that lets only writers register then needs
        no writer's password in the parts that use schemas `schemas register` put there
        (the internet-facing collector among them)."""
        key = (subject, schema_str)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema = Schema(schema_str, "AVRO")
        try:
            schema_id = int(self._client.lookup_schema(subject, schema).schema_id or 0)
        except SchemaRegistryError as exc:
            if exc.http_status_code != 404:  # 40401 no such subject, 40403 not under it
                raise RegistryUnavailableError(
                    f"registry {self.url} refused a lookup in {subject}: {self._said(exc)}"
                ) from exc
            schema_id = 0
        except Exception as exc:
            raise RegistryUnavailableError(f"registry {self.url} unreachable: {exc}") from exc
        try:
            if not schema_id:
                schema_id = int(self._client.register_schema(subject, schema))
        except SchemaRegistryError as exc:
            raise RegistryUnavailableError(
                f"registry {self.url} refused {subject}: {self._said(exc)}"
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(f"registry {self.url} unreachable: {exc}") from exc
        self._ids[key] = schema_id
        self._schemas.setdefault(schema_id, json.loads(schema_str))
        return schema_id

    def latest(self, subject: str) -> tuple[int, str]:
        """The id and text of a subject's latest version."""
        try:
            registered = self._client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            raise RegistryUnavailableError(
                f"registry {self.url} has no latest version of {subject}: {self._said(exc)}"
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(f"registry {self.url} unreachable: {exc}") from exc
        if registered.schema_id is None or registered.schema is None:
            raise RegistryUnavailableError(f"registry {self.url} returned no schema for {subject}")
        return int(registered.schema_id), str(registered.schema.schema_str)

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The writer schema (JSON) registered under ``schema_id``."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.error_code == _SCHEMA_NOT_FOUND or exc.http_status_code == 404:
                raise UnknownSchemaIdError(
                    f"schema id {schema_id} is not registered in {self.url}", schema_id=schema_id
                ) from exc
            raise RegistryUnavailableError(
                f"registry {self.url} failed for schema id {schema_id}: {exc.error_message}",
                schema_id=schema_id,
            ) from exc
        except Exception as exc:
            raise RegistryUnavailableError(
                f"registry {self.url} unreachable: {exc}", schema_id=schema_id
            ) from exc
        if schema.schema_type not in (None, "AVRO"):
            raise UnknownSchemaIdError(
                f"schema id {schema_id} is {schema.schema_type}, not Avro", schema_id=schema_id
            )
        parsed: dict[str, Any] = json.loads(str(schema.schema_str))
        self._schemas[schema_id] = parsed
        return parsed
