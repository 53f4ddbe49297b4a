"""The registry's log → state function: deterministic, first writer wins, ids never reused."""

from __future__ import annotations

import json

from streamlearn.registry.compatibility import Level
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

A = '{"type":"record","name":"A","fields":[]}'
B = '{"type":"record","name":"B","fields":[]}'


def _schema(subject: str, version: int, schema_id: int, schema: str, deleted: bool = False):  # type: ignore[no-untyped-def]
    entry = SchemaVersion(subject, version, schema_id, schema, deleted)
    return schema_key(subject, version), schema_value(entry)


def _replay(records: list[tuple[bytes, bytes | None]]) -> RegistryState:
    state = RegistryState()
    for key, value in records:
        state.apply(key, value)
    return state


def test_records_use_confluents_format() -> None:
    key, value = _schema("s-value", 1, 7, A)
    assert json.loads(key) == {"keytype": "SCHEMA", "subject": "s-value", "version": 1, "magic": 1}
    assert json.loads(value) == {
        "subject": "s-value", "version": 1, "id": 7, "schema": A, "deleted": False,
    }  # fmt: skip
    assert json.loads(config_value(Level.FULL)) == {"compatibilityLevel": "FULL"}


def test_same_log_same_state() -> None:
    log = [
        _schema("a-value", 1, 1, A),
        _schema("b-value", 1, 2, B),
        _schema("b-value", 2, 1, A),
        (config_key("a-value"), config_value(Level.FULL)),
        (config_key(None), config_value(Level.NONE)),
    ]
    first, second = _replay(log), _replay(log)
    assert first == second
    assert first.next_id_for(A) == 1
    assert first.next_id_for('{"type":"string"}') == 3
    assert first.level_for("a-value") is Level.FULL
    assert first.level_for("b-value") is Level.NONE
    assert [v.version for v in first.live_versions("b-value")] == [1, 2]


def test_first_writer_wins_a_race() -> None:
    state = _replay([_schema("a-value", 1, 1, A), _schema("b-value", 1, 1, B)])
    assert state.schemas_by_id == {1: A}
    assert state.subjects() == ["a-value"]
    assert state.ignored_records == 1
    state = _replay([_schema("a-value", 1, 1, A), _schema("a-value", 1, 2, B)])
    assert state.live_versions("a-value")[0].schema_id == 1


def test_soft_delete_keeps_the_id_resolvable() -> None:
    state = _replay([_schema("a-value", 1, 1, A), _schema("a-value", 1, 1, A, deleted=True)])
    assert state.subjects() == []
    assert state.subjects(include_deleted=True) == ["a-value"]
    assert state.schemas_by_id == {1: A}


def test_ids_survive_compaction_of_deleted_versions() -> None:
    # What a replica reads after compaction removed the permanently deleted versions:
    # only the high-water record and what came after remain.
    compacted = [
        (high_water_key("a-value"), high_water_value(5, 3)),
        (schema_key("a-value", 3), None),
    ]
    state = _replay(compacted)
    assert state.next_id_for(B) == 6
    assert state.next_version_for("a-value") == 4


def test_garbage_records_are_skipped() -> None:
    state = _replay(
        [(b"not json", b"{"), (b'{"keytype":"MODE"}', b"{}"), _schema("a-value", 1, 1, A)]
    )
    assert state.subjects() == ["a-value"]


def test_a_name_written_whole_or_with_its_namespace_is_one_schema() -> None:
    """`com.x.User` and `User` in namespace `com.x` got two ids and two versions; Java's
    registry parses both to one schema. A nested type inheriting its namespace, and a
    reference to it by its short name, are the same as written whole."""
    whole = json.dumps(
        {"type": "record", "name": "com.x.User", "fields": [
            {"name": "home", "type": {"type": "record", "name": "com.x.Address", "fields": []}},
            {"name": "work", "type": "com.x.Address"},
            {"name": "past", "type": {"type": "array", "items": "com.x.Address"}},
        ]}
    )  # fmt: skip
    parts = json.dumps(
        {"type": "record", "name": "User", "namespace": "com.x", "fields": [
            {"name": "home", "type": {"type": "record", "name": "Address", "fields": []}},
            {"name": "work", "type": "Address"},
            {"name": "past", "type": {"type": "array", "items": "Address"}},
        ]}
    )  # fmt: skip
    elsewhere = parts.replace('"com.x"', '"com.y"')
    state = _replay([_schema("user-value", 1, 1, whole)])
    assert state.next_id_for(parts) == 1
    assert state.next_id_for(elsewhere) == 2, "another namespace is another schema"
    unnamespaced = _replay([_schema("a-value", 1, 1, A)])
    assert unnamespaced.next_id_for(A.replace('"A"', '"A","namespace":""')) == 1
