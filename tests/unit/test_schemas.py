"""Checks over every shipped schema: they parse, document every field and follow our rules."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest

from streamlearn.serde import NAMESPACE, load_schema, schema_names
from streamlearn.serde.resolution import parse_avro_schema

RECORD_TYPES = [
    "Alert",
    "CleanEvent",
    "DriftReport",
    "Experiment",
    "Feedback",
    "ModelMetrics",
    "ModelSnapshot",
    "PredictionServed",
    "RejectedRecord",
    "Session",
    "TelemetryEvent",
    "TrainingExample",
]

# Field names other parts and external tools rely on (DESIGN.md).
CONTRACT_FIELDS = {
    "TelemetryEvent": [
        "event_id", "event_type", "user_id", "session_hint", "client_ts", "received_ts",
        "url", "referrer", "user_agent", "ip", "app_version", "properties",
    ],
    "Feedback": ["request_id", "event_id", "kind", "value", "client_ts", "received_ts"],
    "PredictionServed": [
        "request_id", "user_id", "model_name", "model_version", "arm", "features", "score",
        "decision", "degraded", "served_ts", "worker_version", "latency_ms",
    ],
    "ModelSnapshot": [
        "model_name", "version", "parent_version", "created_ts", "trained_examples", "offsets",
        "metrics", "libraries", "content_type", "payload", "payload_sha256", "signature",
    ],
}  # fmt: skip


def _records(schema: Any) -> list[dict[str, Any]]:
    """Every record schema nested anywhere in ``schema``."""
    found: list[dict[str, Any]] = []
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            found.append(schema)
            for field in schema["fields"]:
                found += _records(field["type"])
        else:
            for key in ("items", "values"):
                found += _records(schema.get(key))
    elif isinstance(schema, list):
        for branch in schema:
            found += _records(branch)
    return found


def test_every_record_type_of_the_design_is_shipped() -> None:
    assert schema_names() == RECORD_TYPES


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_schema_parses_with_both_avro_libraries(name: str) -> None:
    schema = load_schema(name)
    fastavro.parse_schema(schema)
    parse_avro_schema(json.dumps(schema))
    assert schema["namespace"] == NAMESPACE
    assert schema["name"] == name


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_every_record_and_field_is_documented(name: str) -> None:
    for record in _records(load_schema(name)):
        assert record.get("doc"), f"{record['name']} has no doc"
        for field in record["fields"]:
            assert field.get("doc"), f"{record['name']}.{field['name']} has no doc"


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_optional_fields_default_to_null(name: str) -> None:
    for record in _records(load_schema(name)):
        for field in record["fields"]:
            if isinstance(field["type"], list) and "null" in field["type"]:
                assert field["type"][0] == "null", f"{field['name']}: null must come first"
                assert field.get("default", "missing") is None, f"{field['name']}: default null"


@pytest.mark.parametrize("name", RECORD_TYPES)
def test_timestamps_are_timestamp_millis(name: str) -> None:
    for record in _records(load_schema(name)):
        for field in record["fields"]:
            if field["name"].endswith("_ts"):
                types = field["type"] if isinstance(field["type"], list) else [field["type"]]
                logical = [t for t in types if isinstance(t, dict)]
                assert logical, f"{field['name']} is not a logical timestamp"
                assert logical[0] == {"type": "long", "logicalType": "timestamp-millis"}


@pytest.mark.parametrize(("name", "fields"), CONTRACT_FIELDS.items())
def test_contract_field_names(name: str, fields: list[str]) -> None:
    declared = [f["name"] for f in load_schema(name)["fields"]]
    missing = [f for f in fields if f not in declared]
    assert not missing


def test_events_keep_client_and_received_time() -> None:
    for name in ("TelemetryEvent", "Feedback", "CleanEvent"):
        declared = {f["name"] for f in load_schema(name)["fields"]}
        assert {"client_ts", "received_ts"} <= declared, name
