"""The registry's state: a deterministic function of the records on the ``_schemas`` topic.

Every replica applies the same log with the same rules and so holds the same ids and
versions. Records use Confluent Schema Registry's ``_schemas`` format (JSON keys and
values), so the topic stays readable by Confluent's tooling:

- ``{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}`` →
  ``{"subject":s,"version":v,"id":i,"schema":"...","deleted":false}``; a tombstone
  (null value) deletes that version permanently.
- ``{"keytype":"CONFIG","subject":s|null,"magic":0}`` → ``{"compatibilityLevel":"FULL"}``;
  a tombstone removes a subject's level.
- ``{"keytype":"HIGH_WATER","subject":s,"magic":0}`` → ``{"id":i,"version":v}``, written
  before a permanent delete: compaction removes the deleted records, and without this
  record a replica rebuilt afterwards could hand out a deleted id again, making old data
  decode with the wrong schema. (Our own key type; Confluent's registry skips it.)

Replicas do not elect a leader: two may race to write. The log orders them, and the
first record wins — a later record that would bind an id to another schema, or a
subject version to another id, is ignored by every replica alike; its writer sees it was
not applied and retries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from streamlearn.registry.compatibility import DEFAULT_LEVEL, Level
from streamlearn.registry.equivalence import equivalence_key

log = logging.getLogger(__name__)


@dataclass
class SchemaVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    deleted: bool = False


@dataclass
class RegistryState:
    global_level: Level = DEFAULT_LEVEL
    subject_levels: dict[str, Level] = field(default_factory=dict)
    versions: dict[str, dict[int, SchemaVersion]] = field(default_factory=dict)
    schemas_by_id: dict[int, str] = field(default_factory=dict)
    ids_by_schema: dict[str, int] = field(default_factory=dict)
    """A schema's id by its :func:`equivalence_key` (the first id it was given)."""
    max_id: int = 0
    max_version: dict[str, int] = field(default_factory=dict)
    ignored_records: int = 0

    # ---- applying the log -------------------------------------------------------------

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record of the ``_schemas`` topic (unknown record types are skipped)."""
        try:
            parsed_key: dict[str, Any] = json.loads(key) if key else {}
            parsed_value: dict[str, Any] | None = json.loads(value) if value else None
        except (ValueError, TypeError):
            log.warning("skipping a _schemas record that is not JSON")
            self.ignored_records += 1
            return
        keytype = parsed_key.get("keytype")
        if keytype == "SCHEMA":
            self._apply_schema(parsed_key, parsed_value)
        elif keytype == "CONFIG":
            self._apply_config(parsed_key, parsed_value)
        elif keytype == "HIGH_WATER" and parsed_value is not None:
            self._apply_high_water(parsed_key, parsed_value)
        # NOOP, MODE, DELETE_SUBJECT (Confluent also writes per-version records) and
        # future types carry nothing this registry serves.

    def _apply_config(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject = key.get("subject")
        if value is None:
            if subject is not None:
                self.subject_levels.pop(subject, None)
            else:
                self.global_level = DEFAULT_LEVEL
            return
        try:
            level = Level.parse(value.get("compatibilityLevel"))
        except Exception:
            self.ignored_records += 1
            return
        if subject is None:
            self.global_level = level
        else:
            self.subject_levels[subject] = level

    def _apply_high_water(self, key: dict[str, Any], value: dict[str, Any]) -> None:
        subject, schema_id, version = key.get("subject"), value.get("id"), value.get("version")
        if isinstance(schema_id, int):
            self.max_id = max(self.max_id, schema_id)
        if isinstance(subject, str) and isinstance(version, int):
            self.max_version[subject] = max(self.max_version.get(subject, 0), version)

    def _apply_schema(self, key: dict[str, Any], value: dict[str, Any] | None) -> None:
        subject, version = key.get("subject"), key.get("version")
        if not isinstance(subject, str) or not isinstance(version, int):
            self.ignored_records += 1
            return
        if value is None:
            self.versions.get(subject, {}).pop(version, None)
            self._forget_unreferenced()
            return
        schema_id, schema = value.get("id"), value.get("schema")
        if not isinstance(schema_id, int) or not isinstance(schema, str):
            self.ignored_records += 1
            return
        bound = self.schemas_by_id.get(schema_id)
        if (
            bound is not None
            and bound != schema
            and equivalence_key(bound) != equivalence_key(schema)
        ):
            log.info("ignoring a record binding id %d to another schema (lost race)", schema_id)
            self.ignored_records += 1
            return
        existing = self.versions.get(subject, {}).get(version)
        if existing is not None and existing.schema_id != schema_id:
            log.info("ignoring a record rebinding %s v%d (lost race)", subject, version)
            self.ignored_records += 1
            return
        self.versions.setdefault(subject, {})[version] = SchemaVersion(
            subject, version, schema_id, schema, bool(value.get("deleted", False))
        )
        # An id's text is the first registered: an equivalent text under another subject
        # shares the id (registry/equivalence.py) without changing what the id answers.
        self.schemas_by_id.setdefault(schema_id, schema)
        self.ids_by_schema.setdefault(equivalence_key(schema), schema_id)
        self.max_id = max(self.max_id, schema_id)
        self.max_version[subject] = max(self.max_version.get(subject, 0), version)

    def _forget_unreferenced(self) -> None:
        referenced = {v.schema_id for versions in self.versions.values() for v in versions.values()}
        for schema_id in [i for i in self.schemas_by_id if i not in referenced]:
            key = equivalence_key(self.schemas_by_id.pop(schema_id))
            if self.ids_by_schema.get(key) == schema_id:
                del self.ids_by_schema[key]

    # ---- queries ------------------------------------------------------------------------

    def subjects(self, include_deleted: bool = False) -> list[str]:
        return sorted(
            s
            for s, versions in self.versions.items()
            if any(include_deleted or not v.deleted for v in versions.values())
        )

    def live_versions(self, subject: str) -> list[SchemaVersion]:
        """Versions not soft-deleted, oldest first."""
        versions = self.versions.get(subject, {})
        return [versions[n] for n in sorted(versions) if not versions[n].deleted]

    def all_versions(self, subject: str) -> list[SchemaVersion]:
        versions = self.versions.get(subject, {})
        return [versions[n] for n in sorted(versions)]

    def level_for(self, subject: str | None) -> Level:
        if subject is not None and subject in self.subject_levels:
            return self.subject_levels[subject]
        return self.global_level

    def next_id_for(self, schema: str) -> int:
        """The id a schema gets: its existing id anywhere in the registry, else a new one."""
        return self.ids_by_schema.get(equivalence_key(schema)) or self.max_id + 1

    def next_version_for(self, subject: str) -> int:
        return self.max_version.get(subject, 0) + 1


def schema_key(subject: str, version: int) -> bytes:
    return json.dumps(
        {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1},
        separators=(",", ":"),
    ).encode()


def schema_value(entry: SchemaVersion) -> bytes:
    return json.dumps(
        {
            "subject": entry.subject,
            "version": entry.version,
            "id": entry.schema_id,
            "schema": entry.schema,
            "deleted": entry.deleted,
        },
        separators=(",", ":"),
    ).encode()


def high_water_key(subject: str) -> bytes:
    return json.dumps(
        {"keytype": "HIGH_WATER", "subject": subject, "magic": 0}, separators=(",", ":")
    ).encode()


def high_water_value(max_id: int, max_version: int) -> bytes:
    return json.dumps({"id": max_id, "version": max_version}, separators=(",", ":")).encode()


def config_key(subject: str | None) -> bytes:
    return json.dumps(
        {"keytype": "CONFIG", "subject": subject, "magic": 0}, separators=(",", ":")
    ).encode()


def config_value(level: Level) -> bytes:
    return json.dumps({"compatibilityLevel": level.value}, separators=(",", ":")).encode()
