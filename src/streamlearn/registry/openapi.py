"""The OpenAPI 3.1 document of the schema registry (Confluent's REST API, the parts this
registry implements), served at ``/openapi.json``.

Checked against the implementation by schemathesis (``tests/integration/test_fuzz_http.py``).
What a JSON schema cannot say is said in the descriptions: a ``schema`` must be a parseable
Avro schema (else 422), a subject or version must exist (else 404), and boolean query flags
are read as Confluent's registry reads them (``true``, any case; anything else is false).
"""

from __future__ import annotations

from typing import Any

import streamlearn

JSON = "application/json"
REGISTRY_JSON = "application/vnd.schemaregistry.v1+json"
"""What Confluent's registry answers its API with (and what clients send)."""
VERSION_PATTERN = "^(latest|-1|[1-9][0-9]{0,8})$"

_ERRORS = {
    400: "The body is not a JSON object.",
    404: "No such subject, version or schema (error_code 40401, 40402, 40403).",
    409: "The schema is incompatible with the subject's versions (error_code 409).",
    422: "Invalid schema, version, compatibility level, operation or subject "
    "(error_code 42201-42203, 42205, 42208).",
}


def _json(schema: dict[str, Any], description: str, media: str = REGISTRY_JSON) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema or {"type": "string", "minLength": 1},
        "description": description,
    }


def _flags(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "true (any case) or false; anything else is false.",
        }
        for name in names
    ]


SUBJECT = _path("subject", "Subject name, e.g. telemetry.events-value.")
VERSION = _path(
    "version",
    "A version number, latest or -1.",
    {"type": "string", "pattern": VERSION_PATTERN},
)
ID = _path("id", "Global schema id.", {"type": "integer", "minimum": 0})
GUID = _path("guid", "A schema's guid (a UUID, derived from the schema).")


def _operation(
    operation_id: str,
    ok: dict[str, Any],
    errors: tuple[int, ...] = (),
    parameters: list[dict[str, Any]] | None = None,
    body: str | None = None,
    media: str = REGISTRY_JSON,
) -> dict[str, Any]:
    responses = {"200": _json(ok, "Done.", media)} | {
        str(status): _json(_ref("Error"), _ERRORS[status], media) for status in errors
    }
    operation: dict[str, Any] = {"operationId": operation_id, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": _ref(body)} for media in (JSON, REGISTRY_JSON)},
        }
    return operation


def _schemas() -> dict[str, Any]:
    strings = {"type": "array", "items": {"type": "string"}}
    level = {
        "enum": ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
                 "FULL", "FULL_TRANSITIVE"],
    }  # fmt: skip
    return {
        "Error": {
            "type": "object",
            "required": ["error_code", "message"],
            "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
        },
        "SchemaRequest": {
            "type": "object",
            "required": ["schema"],
            "properties": {
                "schema": {"type": "string", "description": "An Avro schema, as JSON text."},
                "schemaType": {"enum": ["AVRO"]},
                "references": {"type": "array", "maxItems": 0},
            },
        },
        "ConfigRequest": {
            "type": "object",
            "required": ["compatibility"],
            "properties": {"compatibility": level},
        },
        "Schema": {
            "type": "object",
            "required": ["schema"],
            "properties": {
                "schema": {"type": "string"},
                "schemaType": {"type": "string"},
                "guid": {"type": "string"},
            },
        },
        "Version": {
            "type": "object",
            "required": ["subject", "version", "id", "schema"],
            "properties": {
                "subject": {"type": "string"},
                "version": {"type": "integer"},
                "id": {"type": "integer"},
                "schema": {"type": "string"},
                "schemaType": {"type": "string"},
            },
        },
        "SubjectVersion": {
            "type": "object",
            "required": ["subject", "version"],
            "properties": {"subject": {"type": "string"}, "version": {"type": "integer"}},
        },
        "Id": {
            "type": "object",
            "required": ["id"],
            "properties": {
                "id": {"type": "integer"},
                "version": {"type": "integer"},
                "guid": {"type": "string"},
            },
        },
        "ContextId": {
            "type": "object",
            "required": ["context", "id"],
            "properties": {"context": {"type": "string"}, "id": {"type": "integer"}},
        },
        "Level": {
            "type": "object",
            "required": ["compatibilityLevel"],
            "properties": {"compatibilityLevel": level},
        },
        "LevelSet": {
            "type": "object",
            "required": ["compatibility"],
            "properties": {"compatibility": level},
        },
        "Compatibility": {
            "type": "object",
            "required": ["is_compatible"],
            "properties": {"is_compatible": {"type": "boolean"}, "messages": strings},
        },
        "Mode": {
            "type": "object",
            "required": ["mode"],
            "properties": {"mode": {"type": "string"}},
        },
        "Strings": strings,
        "Integers": {"type": "array", "items": {"type": "integer"}},
        "Status": {"type": "object", "required": ["status"]},
    }


def openapi_document() -> dict[str, Any]:
    """The registry's API."""
    paths: dict[str, dict[str, Any]] = {
        "/": {"get": _operation("root", {"type": "object"})},
        "/schemas/types": {"get": _operation("schemaTypes", _ref("Strings"))},
        "/schemas/ids/{id}": {"get": _operation("schemaById", _ref("Schema"), (404,), [ID])},
        "/schemas/guids/{guid}": {
            "get": _operation("schemaByGuid", _ref("Schema"), (404,), [GUID])
        },
        "/schemas/guids/{guid}/ids": {
            "get": _operation(
                "idsOfGuid", {"type": "array", "items": _ref("ContextId")}, (), [GUID]
            )
        },
        "/schemas/ids/{id}/subjects": {
            "get": _operation("subjectsOfId", _ref("Strings"), (404,), [ID, *_flags("deleted")])
        },
        "/schemas/ids/{id}/versions": {
            "get": _operation(
                "versionsOfId",
                {"type": "array", "items": _ref("SubjectVersion")},
                (404,),
                [ID, *_flags("deleted")],
            )
        },
        "/subjects": {
            "get": _operation(
                "subjects",
                _ref("Strings"),
                parameters=[
                    *_flags("deleted", "deleted_only"),
                    {"name": "subjectPrefix", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/subjects/{subject}": {
            "post": _operation(
                "lookup",
                _ref("Version"),
                (400, 404, 422),
                [SUBJECT, *_flags("deleted")],
                "SchemaRequest",
            ),
            "delete": _operation(
                "deleteSubject", _ref("Integers"), (404,), [SUBJECT, *_flags("permanent")]
            ),
        },
        "/subjects/{subject}/versions": {
            "get": _operation(
                "versions", _ref("Integers"), (404,), [SUBJECT, *_flags("deleted", "deleted_only")]
            ),
            "post": _operation("register", _ref("Id"), (400, 409, 422), [SUBJECT], "SchemaRequest"),
        },
        "/subjects/{subject}/versions/{version}": {
            "get": _operation(
                "version", _ref("Version"), (404, 422), [SUBJECT, VERSION, *_flags("deleted")]
            ),
            "delete": _operation(
                "deleteVersion",
                {"type": "integer"},
                (404, 422),
                [SUBJECT, VERSION, *_flags("permanent")],
            ),
        },
        "/subjects/{subject}/versions/{version}/referencedby": {
            "get": _operation("referencedBy", _ref("Integers"), (404, 422), [SUBJECT, VERSION])
        },
        "/config": {
            "get": _operation("globalConfig", _ref("Level")),
            "put": _operation(
                "setGlobalConfig", _ref("LevelSet"), (400, 422), body="ConfigRequest"
            ),
        },
        "/config/{subject}": {
            "get": _operation(
                "subjectConfig", _ref("Level"), (404,), [SUBJECT, *_flags("defaultToGlobal")]
            ),
            "put": _operation(
                "setSubjectConfig", _ref("LevelSet"), (400, 422), [SUBJECT], "ConfigRequest"
            ),
            "delete": _operation("deleteSubjectConfig", _ref("Level"), (404,), [SUBJECT]),
        },
        "/compatibility/subjects/{subject}/versions": {
            "post": _operation(
                "compatibleWithAll",
                _ref("Compatibility"),
                (400, 404, 422),
                [SUBJECT, *_flags("verbose")],
                "SchemaRequest",
            ),
        },
        "/compatibility/subjects/{subject}/versions/{version}": {
            "post": _operation(
                "compatibleWithVersion",
                _ref("Compatibility"),
                (400, 404, 422),
                [SUBJECT, VERSION, *_flags("verbose")],
                "SchemaRequest",
            ),
        },
        "/mode": {"get": _operation("globalMode", _ref("Mode"))},
        "/mode/{subject}": {"get": _operation("subjectMode", _ref("Mode"), (), [SUBJECT])},
        "/contexts": {"get": _operation("contexts", _ref("Strings"))},
        "/healthz": {"get": _operation("health", _ref("Status"), media=JSON)},
    }
    for path, methods in paths.items():
        for method, operation in methods.items():
            if method in ("put", "delete") or (method == "post" and path.endswith("/versions")
                                                and path.startswith("/subjects/")):  # fmt: skip
                operation["responses"]["401"] = _json(
                    _ref("Error"), "Writers are configured and this request is not one of them."
                )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamlearn schema registry",
            "version": streamlearn.__version__,
            "description": "Confluent-compatible (Avro, no references). See docs/registry.md.",
        },
        "paths": paths,
        "components": {"schemas": _schemas()},
    }
