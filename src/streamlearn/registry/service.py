"""What the registry does, independent of HTTP: register, look up, delete, configure, check.

Reads answer from this replica's :class:`RegistryState`; writes go through the
``_schemas`` topic (:class:`SchemaLog`) and are confirmed by reading them back.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

from streamlearn import strict_json
from streamlearn.registry import exceptions as errors
from streamlearn.registry.compatibility import Level, check, check_defaults, parse_schema
from streamlearn.registry.equivalence import equivalence_key
from streamlearn.registry.schema_limits import check_width
from streamlearn.registry.state import (
    RegistryState,
    SchemaVersion,
    config_key,
    config_value,
    high_water_key,
    high_water_value,
    schema_key,
    schema_value,
)
from streamlearn.registry.store import SchemaLog
from streamlearn.serde.schemas import canonical_json

SUPPORTED_TYPES = ("AVRO",)
RESERVED_SUBJECTS = ("__GLOBAL", "__EMPTY")
"""Names Confluent's registry keeps for its global settings, and refuses as subjects."""
MAX_REGISTER_ATTEMPTS = 12
_GUID_NAMESPACE = uuid.UUID("6f1c1f1e-7d0a-4c55-9a39-5e1e6b1c0a11")


def schema_guid(schema: str) -> str:
    """A stable GUID per schema (newer clients accept one beside the numeric id): derived
    from its equivalence key, as its id is given, so that texts sharing an id (keys in
    another order, under two subjects) share a guid too (derived from each text, a version
    written differently had another guid than its id)."""
    return str(uuid.uuid5(_GUID_NAMESPACE, equivalence_key(schema)))


def check_subject(subject: str) -> None:
    """Refuse what Confluent's registry refuses to write under (42208): a subject holding
    a control character (a tab pasted with the name, a NUL: registered, it would match no
    topic's ``<topic>-value`` and be listed with it) or one of its reserved names."""
    control = next((c for c in subject if ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if control is not None:
        raise errors.invalid_subject(subject, f"it holds the control character {control!r}")
    if subject in RESERVED_SUBJECTS:
        raise errors.invalid_subject(subject, "the name is reserved for global settings")


def version_body(entry: SchemaVersion) -> dict[str, Any]:
    return {
        "subject": entry.subject,
        "version": entry.version,
        "id": entry.schema_id,
        "guid": schema_guid(entry.schema),
        "schema": entry.schema,
    }


class RegistryService:
    def __init__(self, schema_log: SchemaLog) -> None:
        self.log = schema_log
        self._write_lock = asyncio.Lock()
        self._guids: dict[int, str] = {}
        """Each schema id's guid, once asked for."""

    @property
    def state(self) -> RegistryState:
        return self.log.state

    # ---- schemas and subjects -----------------------------------------------------------

    @staticmethod
    def _validated(schema: object, schema_type: object) -> str:
        if schema_type not in (None, *SUPPORTED_TYPES):
            raise errors.invalid_schema(f"schema type {schema_type!r} is not supported (AVRO only)")
        if not isinstance(schema, str) or not schema.strip():
            raise errors.invalid_schema("'schema' must be a non-empty string")
        try:
            # NaN and Infinity are Python's and JavaScript's, not JSON: a stored schema
            # with one could not be parsed by the clients it is served to.
            parsed = strict_json.loads(schema)
            text = canonical_json(schema)
        except ValueError as exc:
            raise errors.invalid_schema(f"not JSON: {exc}") from exc
        except RecursionError:
            raise errors.invalid_schema("nested deeper than the registry reads") from None
        check_width(parsed)  # before the parser, which takes quadratic time in width
        parse_schema(text, remember=False)
        check_defaults(text)
        return text

    async def _validated_aside(self, schema: object, schema_type: object) -> str:
        """:meth:`_validated` in a thread: parsing an 8 MB schema takes seconds of CPU, and
        on the event loop every other request (``/healthz`` too) waited for it."""
        return await asyncio.to_thread(self._validated, schema, schema_type)

    def _live_match(
        self, subject: str, schema: str, *, deleted: bool = False
    ) -> SchemaVersion | None:
        versions = (
            self.state.all_versions(subject) if deleted else self.state.live_versions(subject)
        )
        # The candidate's key is not cached (the cache is for stored versions): a request's
        # schema of up to 8 MB would stay there, twice (its text and its key).
        key = equivalence_key.__wrapped__(schema)
        for entry in reversed(versions):
            if entry.schema == schema or equivalence_key(entry.schema) == key:
                return entry
        return None

    async def register(
        self, subject: str, schema: object, schema_type: object = None
    ) -> dict[str, Any]:
        check_subject(subject)
        text = await self._validated_aside(schema, schema_type)
        async with self._write_lock:
            for attempt in range(MAX_REGISTER_ATTEMPTS):
                if attempt:
                    # Lost a race to another replica: back off by a random amount so the
                    # two stop proposing the same next id in lockstep.
                    await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))  # noqa: S311
                existing = self._live_match(subject, text)
                if existing is not None:
                    return version_body(existing)
                live = self.state.live_versions(subject)
                problems = await asyncio.to_thread(
                    check, text, [v.schema for v in live], self.state.level_for(subject)
                )
                if problems:
                    raise errors.incompatible(problems)
                entry = SchemaVersion(
                    subject,
                    self.state.next_version_for(subject),
                    self.state.next_id_for(text),
                    text,
                )
                await self.log.write([(schema_key(subject, entry.version), schema_value(entry))])
                stored = self.state.versions.get(subject, {}).get(entry.version)
                if (
                    stored is not None
                    and stored.schema_id == entry.schema_id
                    and stored.schema == text
                ):
                    return version_body(stored)
                if stored is not None:
                    # Another replica's record won this version, and ours came after it
                    # under the same key. Compaction keeps a key's last record: write the
                    # winner again (a no-op for every replica), or a replica rebuilt from
                    # the compacted topic would give this version, and its id, our schema.
                    await self.log.write(
                        [(schema_key(subject, stored.version), schema_value(stored))]
                    )
                # Another replica wrote first; the state now includes its record: try again.
        raise errors.store_error(f"could not register under {subject}: too many concurrent writers")

    async def lookup(
        self, subject: str, schema: object, schema_type: object, deleted: bool
    ) -> dict[str, Any]:
        text = await self._validated_aside(schema, schema_type)
        if not self.state.all_versions(subject):
            raise errors.subject_not_found(subject)
        entry = self._live_match(subject, text, deleted=deleted)
        if entry is None:
            raise errors.schema_not_found()
        return version_body(entry)

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        schema = self.state.schemas_by_id.get(schema_id)
        if schema is None:
            raise errors.schema_not_found(f"Schema {schema_id} not found")
        return {"schema": schema, "guid": schema_guid(schema)}

    def ids_of_guid(self, guid: str) -> list[int]:
        """The ids of the schema whose guid is ``guid``: one, or none (a guid and an id
        are both given by a schema's equivalence key)."""
        guids = self._guids
        found = []
        for schema_id, schema in self.state.schemas_by_id.items():
            known = guids.get(schema_id)
            if known is None:  # an id names one text for good: its guid is kept
                known = guids[schema_id] = schema_guid(schema)
            if known == guid:
                found.append(schema_id)
        return sorted(found)

    def schema_by_guid(self, guid: str) -> dict[str, Any]:
        for schema_id in self.ids_of_guid(guid):
            return self.schema_by_id(schema_id)
        raise errors.schema_not_found(f"Schema {guid} not found")

    def subjects_of_id(self, schema_id: int, deleted: bool) -> list[dict[str, Any]]:
        self.schema_by_id(schema_id)
        return [
            {"subject": v.subject, "version": v.version}
            for subject in self.state.subjects(include_deleted=True)
            for v in self.state.all_versions(subject)
            if v.schema_id == schema_id and (deleted or not v.deleted)
        ]

    def subjects(self, deleted: bool, deleted_only: bool, prefix: str | None) -> list[str]:
        names = self.state.subjects(include_deleted=deleted or deleted_only)
        if deleted_only:
            live = set(self.state.subjects())
            names = [s for s in names if s not in live]
        return [s for s in names if prefix is None or s.startswith(prefix)]

    def versions(self, subject: str, deleted: bool, deleted_only: bool = False) -> list[int]:
        every = self.state.all_versions(subject)
        if not every:
            raise errors.subject_not_found(subject)
        if deleted_only:
            chosen = [v for v in every if v.deleted]
        else:
            chosen = [v for v in every if deleted or not v.deleted]
        if not chosen and not deleted_only:
            raise errors.subject_not_found(subject)
        return [v.version for v in chosen]

    def version(self, subject: str, version: str, deleted: bool) -> SchemaVersion:
        every = self.state.all_versions(subject)
        if not every:
            raise errors.subject_not_found(subject)
        candidates = every if deleted else [v for v in every if not v.deleted]
        if version in ("latest", "-1"):
            if not candidates:
                raise errors.subject_not_found(subject)
            return candidates[-1]
        number = parse_version(version)
        for entry in candidates:
            if entry.version == number:
                return entry
        raise errors.version_not_found(subject, number)

    async def delete_version(self, subject: str, version: str, permanent: bool) -> int:
        async with self._write_lock:
            # A numbered version is looked up among the soft-deleted ones too: deleting one
            # again softly is Confluent's 40406, not "no such version".
            numbered = version not in ("latest", "-1")
            entry = self.version(subject, version, deleted=permanent or numbered)
            if entry.deleted and not permanent:
                raise errors.version_soft_deleted(subject, entry.version)
            if permanent:
                if not entry.deleted:
                    raise errors.version_not_soft_deleted(subject, entry.version)
                await self.log.write(self._permanent_delete_records(subject, [entry]))
            else:
                await self.log.write(
                    [(schema_key(subject, entry.version), schema_value(_soft_deleted(entry)))]
                )
            return entry.version

    async def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        async with self._write_lock:
            every = self.state.all_versions(subject)
            if not every:
                raise errors.subject_not_found(subject)
            live = [v for v in every if not v.deleted]
            if permanent:
                if live:
                    raise errors.subject_not_soft_deleted(subject)
                await self.log.write(self._permanent_delete_records(subject, every))
                if subject in self.state.subject_levels:
                    await self.log.write([(config_key(subject), None)])
                return [v.version for v in every]
            if not live:
                raise errors.subject_soft_deleted(subject)
            await self.log.write(
                [(schema_key(subject, v.version), schema_value(_soft_deleted(v))) for v in live]
            )
            return [v.version for v in live]

    def _permanent_delete_records(
        self, subject: str, entries: list[SchemaVersion]
    ) -> list[tuple[bytes, bytes | None]]:
        high_water = high_water_value(self.state.max_id, self.state.max_version.get(subject, 0))
        records: list[tuple[bytes, bytes | None]] = [(high_water_key(subject), high_water)]
        records += [(schema_key(subject, v.version), None) for v in entries]
        return records

    # ---- compatibility ------------------------------------------------------------------

    def get_level(self, subject: str | None, default_to_global: bool) -> Level:
        if (
            subject is not None
            and subject not in self.state.subject_levels
            and not default_to_global
        ):
            raise errors.subject_level_compatibility_not_configured(subject)
        return self.state.level_for(subject)

    async def set_level(self, subject: str | None, level: object) -> Level:
        if subject is not None:
            check_subject(subject)
        parsed = Level.parse(level)
        async with self._write_lock:
            await self.log.write([(config_key(subject), config_value(parsed))])
        return parsed

    async def delete_level(self, subject: str | None) -> Level:
        async with self._write_lock:
            previous = self.state.level_for(subject)
            if subject is not None and subject not in self.state.subject_levels:
                raise errors.subject_level_compatibility_not_configured(subject)
            await self.log.write([(config_key(subject), None)])
        return previous

    async def test_compatibility(
        self, subject: str, version: str | None, schema: object, schema_type: object
    ) -> list[str]:
        text = await self._validated_aside(schema, schema_type)
        level = self.state.level_for(subject)
        live = self.state.live_versions(subject)
        if version is None:
            return await asyncio.to_thread(check, text, [v.schema for v in live], level)
        if version in ("latest", "-1") and not live:
            # Nothing to be incompatible with: Confluent's registry answers true too (a
            # check before a subject's first version, confluent-kafka's default `latest`).
            return []
        if not self.state.all_versions(subject):
            raise errors.subject_not_found(subject)
        # A version, `latest` included, is tested against that version alone, as Confluent's
        # registry does (a transitive level checked every version for `latest`, which
        # confluent-kafka's test_compatibility sends by default); against every version the
        # level asks for is the request without a version.
        target = self.version(subject, version, deleted=False)
        single = {
            Level.BACKWARD_TRANSITIVE: Level.BACKWARD,
            Level.FORWARD_TRANSITIVE: Level.FORWARD,
            Level.FULL_TRANSITIVE: Level.FULL,
        }.get(level, level)
        return await asyncio.to_thread(check, text, [target.schema], single)


def _soft_deleted(entry: SchemaVersion) -> SchemaVersion:
    return SchemaVersion(entry.subject, entry.version, entry.schema_id, entry.schema, deleted=True)


def parse_version(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        raise errors.invalid_version(version) from None
    if not 1 <= number <= 2**31 - 1:
        raise errors.invalid_version(version)
    return number
