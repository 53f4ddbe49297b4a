"""The Confluent Schema Registry REST API over :class:`RegistryService` (aiohttp).

The subset real clients use (confluent-kafka's ``SchemaRegistryClient`` and serdes,
Kafka Connect, ksqlDB-style tools): schemas by id, subjects and versions, register and
look up, deletes, compatibility config and checks. Errors have the registry's JSON shape
``{"error_code": ..., "message": ...}``; routes this registry does not have (e.g. schema
associations, which newer clients query first) answer 404 as a registry without them does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streamlearn.http_errors import kept_headers
from streamlearn.registry import exceptions as errors
from streamlearn.registry.exceptions import RegistryError
from streamlearn.registry.openapi import JSON, REGISTRY_JSON, openapi_document
from streamlearn.registry.service import RegistryService, version_body

log = logging.getLogger(__name__)

CONTENT_TYPE = REGISTRY_JSON
"""Every answer of the registry's API (Confluent's); /healthz and /openapi.json answer
plain JSON."""
DEFAULT_CONTEXT = "."
"""The one context this registry has (Confluent's name for the default one)."""
SERVICE: web.AppKey[RegistryService] = web.AppKey("registry_service", RegistryService)

routes = web.RouteTableDef()
DOCUMENT = openapi_document()


def _json(body: Any, status: int = 200, content_type: str = CONTENT_TYPE) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=content_type)


def _flag(request: web.Request, name: str, default: bool = False) -> bool:
    """Booleans arrive as true/false or True/False depending on the client."""
    value = request.query.get(name)
    return default if value is None else value.strip().lower() == "true"


ACCEPTED_MEDIA_TYPES = frozenset(
    {
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json",
        # What aiohttp reports for a request without Content-Type; Confluent takes it too.
        "application/octet-stream",
    }
)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type not in ACCEPTED_MEDIA_TYPES:
        # As Confluent's registry answers a form or text (curl's -d without -H).
        raise errors.unsupported_media_type(request.content_type)
    try:
        body = json.loads(await request.read())
    except ValueError as exc:  # UnicodeDecodeError included: bytes that are not UTF-8
        raise errors.bad_request(f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise errors.bad_request("request body is nested deeper than the registry reads") from None
    if not isinstance(body, dict):
        raise errors.bad_request("request body must be a JSON object")
    return body


def _schema_id(request: web.Request) -> int:
    raw = request.match_info["id"]
    try:
        return int(raw)
    except ValueError:
        raise errors.schema_not_found(f"Schema {raw} not found") from None


def _service(request: web.Request) -> RegistryService:
    return request.app[SERVICE]


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except RegistryError as exc:
        return _json({"error_code": exc.error_code, "message": exc.message}, exc.http_status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _json(
            {"error_code": exc.status, "message": f"HTTP {exc.status} {exc.reason}"}, exc.status
        )
        response.headers.update(kept_headers(exc))
        return response
    except Exception:
        log.exception("registry request %s %s failed", request.method, request.path)
        return _json({"error_code": 50001, "message": "Error in the backend datastore"}, 500)


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return _json({})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    failure = _service(request).log.failure
    if failure is not None:
        return _json(
            {"status": "failing", "reason": f"not following _schemas: {failure}"}, 503, JSON
        )
    return _json({"status": "ok"}, content_type=JSON)


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return _json(DOCUMENT, content_type=JSON)


@routes.get("/schemas/types")
async def schema_types(request: web.Request) -> web.Response:
    return _json(["AVRO"])


@routes.get("/schemas/ids/{id}")
async def schema_by_id(request: web.Request) -> web.Response:
    return _json(_service(request).schema_by_id(_schema_id(request)))


@routes.get("/schemas/ids/{id}/schema")
async def raw_schema_by_id(request: web.Request) -> web.Response:
    schema = _service(request).schema_by_id(_schema_id(request))["schema"]
    return web.Response(text=schema, content_type=CONTENT_TYPE)


@routes.get("/schemas/guids/{guid}")
async def schema_by_guid(request: web.Request) -> web.Response:
    return _json(_service(request).schema_by_guid(request.match_info["guid"]))


@routes.get("/schemas/guids/{guid}/ids")
async def ids_of_guid(request: web.Request) -> web.Response:
    ids = _service(request).ids_of_guid(request.match_info["guid"])
    return _json([{"context": DEFAULT_CONTEXT, "id": schema_id} for schema_id in ids])


@routes.get("/schemas/ids/{id}/subjects")
async def subjects_of_id(request: web.Request) -> web.Response:
    pairs = _service(request).subjects_of_id(_schema_id(request), _flag(request, "deleted"))
    return _json(sorted({p["subject"] for p in pairs}))


@routes.get("/schemas/ids/{id}/versions")
async def versions_of_id(request: web.Request) -> web.Response:
    return _json(_service(request).subjects_of_id(_schema_id(request), _flag(request, "deleted")))


@routes.get("/subjects")
async def list_subjects(request: web.Request) -> web.Response:
    return _json(
        _service(request).subjects(
            _flag(request, "deleted"),
            _flag(request, "deleted_only"),
            request.query.get("subjectPrefix") or None,
        )
    )


@routes.post("/subjects/{subject}/versions")
async def register(request: web.Request) -> web.Response:
    body = await _body(request)
    if body.get("references"):
        raise errors.invalid_schema("schema references are not supported by this registry")
    # What a register may carry that this registry would not keep: refused, never dropped
    # (a client would believe its rule set, say field encryption, stored). Null is unset.
    for field in ("metadata", "ruleSet"):
        if body.get(field):  # none or empty: nothing to keep
            raise errors.invalid_schema(f"{field} is not supported by this registry")
    for field in ("id", "version"):
        value = body.get(field)
        # Clients that leave them unset send null, or -1 / 0 (Java's defaults).
        if value is not None and not (isinstance(value, int) and value <= 0):
            raise errors.operation_not_permitted(
                f"a register naming its {field}: this registry assigns ids and versions "
                "itself (it has no IMPORT mode)"
            )
    result = await _service(request).register(
        request.match_info["subject"], body.get("schema"), body.get("schemaType")
    )
    # What Confluent's registry answers since it gives schemas a guid: a client that
    # writes the guid into a record's headers takes it from here.
    return _json({"id": result["id"], "version": result["version"], "guid": result["guid"]})


@routes.post("/subjects/{subject}")
async def lookup(request: web.Request) -> web.Response:
    body = await _body(request)
    return _json(
        await _service(request).lookup(
            request.match_info["subject"],
            body.get("schema"),
            body.get("schemaType"),
            _flag(request, "deleted"),
        )
    )


@routes.get("/subjects/{subject}/versions")
async def list_versions(request: web.Request) -> web.Response:
    return _json(
        _service(request).versions(
            request.match_info["subject"], _flag(request, "deleted"), _flag(request, "deleted_only")
        )
    )


@routes.get("/subjects/{subject}/versions/{version}")
async def get_version(request: web.Request) -> web.Response:
    entry = _service(request).version(
        request.match_info["subject"], request.match_info["version"], _flag(request, "deleted")
    )
    return _json(version_body(entry))


@routes.get("/subjects/{subject}/versions/{version}/schema")
async def get_version_schema(request: web.Request) -> web.Response:
    entry = _service(request).version(
        request.match_info["subject"], request.match_info["version"], _flag(request, "deleted")
    )
    return web.Response(text=entry.schema, content_type=CONTENT_TYPE)


@routes.get("/subjects/{subject}/versions/{version}/referencedby")
async def referenced_by(request: web.Request) -> web.Response:
    _service(request).version(request.match_info["subject"], request.match_info["version"], True)
    return _json([])


@routes.delete("/subjects/{subject}")
async def delete_subject(request: web.Request) -> web.Response:
    versions = await _service(request).delete_subject(
        request.match_info["subject"], _flag(request, "permanent")
    )
    return _json(versions)


@routes.delete("/subjects/{subject}/versions/{version}")
async def delete_version(request: web.Request) -> web.Response:
    version = await _service(request).delete_version(
        request.match_info["subject"], request.match_info["version"], _flag(request, "permanent")
    )
    return _json(version)


@routes.get("/config")
async def get_global_config(request: web.Request) -> web.Response:
    return _json({"compatibilityLevel": _service(request).get_level(None, True).value})


def _level_of(body: dict[str, Any]) -> object:
    """The compatibility level a ``PUT /config`` body sets; any other field Confluent's
    registry takes (``alias``, ``normalize``, default and override rule sets...) refused,
    not dropped. Null, false or empty is unset."""
    for field, value in body.items():
        if field != "compatibility" and value:
            raise errors.unsupported_config(field)
    return body.get("compatibility")


@routes.put("/config")
async def put_global_config(request: web.Request) -> web.Response:
    level = await _service(request).set_level(None, _level_of(await _body(request)))
    return _json({"compatibility": level.value})


@routes.delete("/config")
async def delete_global_config(request: web.Request) -> web.Response:
    previous = await _service(request).delete_level(None)
    return _json({"compatibilityLevel": previous.value})


@routes.get("/config/{subject}")
async def get_subject_config(request: web.Request) -> web.Response:
    level = _service(request).get_level(
        request.match_info["subject"], _flag(request, "defaultToGlobal")
    )
    return _json({"compatibilityLevel": level.value})


@routes.put("/config/{subject}")
async def put_subject_config(request: web.Request) -> web.Response:
    level = await _service(request).set_level(
        request.match_info["subject"], _level_of(await _body(request))
    )
    return _json({"compatibility": level.value})


@routes.delete("/config/{subject}")
async def delete_subject_config(request: web.Request) -> web.Response:
    previous = await _service(request).delete_level(request.match_info["subject"])
    return _json({"compatibilityLevel": previous.value})


async def _compatibility(request: web.Request, version: str | None) -> web.Response:
    body = await _body(request)
    messages = await _service(request).test_compatibility(
        request.match_info["subject"], version, body.get("schema"), body.get("schemaType")
    )
    result: dict[str, Any] = {"is_compatible": not messages}
    if _flag(request, "verbose"):
        result["messages"] = messages
    return _json(result)


@routes.post("/compatibility/subjects/{subject}/versions/{version}")
async def compatibility_with_version(request: web.Request) -> web.Response:
    return await _compatibility(request, request.match_info["version"])


@routes.post("/compatibility/subjects/{subject}/versions")
async def compatibility_with_all(request: web.Request) -> web.Response:
    return await _compatibility(request, None)


@routes.get("/mode")
async def global_mode(request: web.Request) -> web.Response:
    return _json({"mode": "READWRITE"})


@routes.get("/mode/{subject}")
async def subject_mode(request: web.Request) -> web.Response:
    return _json({"mode": "READWRITE"})


@routes.get("/contexts")
async def contexts(request: web.Request) -> web.Response:
    return _json([DEFAULT_CONTEXT])
