"""The OpenAPI 3.1 document of the collector, served at ``/openapi.json``.

Built from the settings (limits, whether unknown fields are refused) and the field lists
of :mod:`streamlearn.collector.mapping`, and checked against the implementation by the
schema-driven fuzz test (``tests/integration/test_fuzz_http.py``): every answer the
collector gives must be one this document declares, with a body that validates.
"""

from __future__ import annotations

from typing import Any

import streamlearn
from streamlearn.collector.mapping import EARLIEST_MS, FEEDBACK_KINDS, LATEST_MS, MAX_STRING
from streamlearn.collector.write_keys import HEADER, QUERY
from streamlearn.settings import Settings

JSON = "application/json"
NOT_AN_EDGE_DAY = "^(?!0001-01-01|9999-12-31)"
NOT_ONLY_SPACE = (
    "[^\\t\\n\\u000b\\u000c\\r\\u001c-\\u001f \\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
"""A character that is not white space as the collector (Python's ``str.isspace``) sees it:
a required text must hold one."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _retry_after(description: str) -> dict[str, Any]:
    return {
        **_json(_ref("Error"), description),
        "headers": {
            "Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}
        },
    }


def _schemas(settings: Settings) -> dict[str, Any]:
    # An optional field sent as null is taken as absent, so optional fields allow null.
    required_text = {
        "type": "string", "maxLength": MAX_STRING, "minLength": 1, "pattern": NOT_ONLY_SPACE
    }  # fmt: skip
    text = {"type": ["string", "null"], "maxLength": MAX_STRING}
    strings = {"type": ["object", "null"], "additionalProperties": {"type": "string"}}
    timestamp = {
        "description": "ISO 8601 with a zone, or epoch milliseconds [default: received].",
        "anyOf": [
            # Not on the first or the last day a timestamp holds: a zone can move those
            # out of its years (mapping.EDGE_DAYS).
            {"type": "string", "format": "date-time", "pattern": NOT_AN_EDGE_DAY},
            # Years 1 to 9999, what a timestamp record can hold (fractions of a
            # millisecond are taken, and dropped).
            {"type": "number", "minimum": EARLIEST_MS, "maximum": LATEST_MS},
            {"type": "null"},
        ],
    }
    event_id = {
        "type": ["string", "null"], "format": "uuid", "description": "[default: a new UUID]"
    }  # fmt: skip
    # Required in the body as far as this document can say; the collector also takes it
    # from an X-App-Version header for every item of a request (a rule across header and
    # body that a JSON schema cannot state).
    app_version = {
        **required_text,
        "description": "The sending app's version (or an X-App-Version header for all items).",
    }
    closed = settings.collector_unknown_fields == "reject"
    return {
        "Event": {
            "type": "object",
            "description": "Something a person did (a page view, a click on the page).",
            "required": ["event_type", "user_id", "app_version"],
            "additionalProperties": not closed,
            "not": {"required": ["request_id"]},
            "properties": {
                "event_id": event_id,
                "event_type": required_text,
                "user_id": required_text,
                "session_hint": text,
                "client_ts": timestamp,
                "url": text,
                "referrer": text,
                "user_agent": {**text, "description": "[default: the User-Agent header]"},
                "app_version": app_version,
                "properties": strings,
                "context": strings,
            },
        },
        "Feedback": {
            "type": "object",
            "description": "What became of a served prediction (keyed by its request id).",
            "required": ["request_id", "kind", "app_version"],
            "additionalProperties": not closed,
            "properties": {
                "request_id": required_text,
                "event_id": event_id,
                "kind": {"enum": sorted(FEEDBACK_KINDS)},
                "value": {"type": ["number", "null"]},
                "user_id": text,
                "client_ts": timestamp,
                "app_version": app_version,
                "properties": strings,
                "user_agent": {
                    **text,
                    "description": "[default: the User-Agent header] Impressions and clicks "
                    "a declared crawler's user agent sent (Googlebot, a headless browser...) "
                    "are not learned from.",
                },
            },
        },
        "Item": {"oneOf": [_ref("Event"), _ref("Feedback")]},
        "Batch": {
            "type": "array",
            "minItems": 1,
            "maxItems": settings.collector_max_batch,
            "items": _ref("Item"),
        },
        "Accepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["accepted", "event_ids"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 1},
                "event_ids": {"type": "array", "items": {"type": "string", "format": "uuid"}},
            },
        },
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What is wrong."},
                "field": {"type": "string", "description": "Where, e.g. [2].user_id, or body."},
                "written": {
                    "enum": ["none", "partial"],
                    "description": "503 only: none: nothing of the request was written (the "
                    "producer's queue was full, or its client refused the first event at once); "
                    "partial: handed to Kafka and not every event confirmed, so any may be "
                    "written.",
                },
            },
        },
        "Status": {"type": "object", "required": ["status"]},
    }


def _write_key_security() -> dict[str, Any]:
    """The write key, as a header (apps) or a query parameter (the browser tag's beacons)."""
    return {
        "security": [{"writeKeyHeader": []}, {"writeKeyQuery": []}],
        "401": {
            **_json(_ref("Error"), "No write key, or one the collector does not know."),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
        },
    }


WRITE_KEY_SCHEMES = {
    "writeKeyHeader": {"type": "apiKey", "in": "header", "name": HEADER},
    "writeKeyQuery": {
        "type": "apiKey",
        "in": "query",
        "name": QUERY,
        "description": "For browsers (sendBeacon cannot set headers); see docs/browser.md.",
    },
}


def openapi_document(settings: Settings, *, write_keys: bool = False) -> dict[str, Any]:
    """The collector's API as it is configured by ``settings`` (``write_keys``: whether
    posts need a write key)."""
    keyed = _write_key_security() if write_keys else {}
    forbidden = "A browser origin that is not listed" + (
        ", or an item naming another app (context.app, properties.app) than its key's."
        if write_keys
        else "."
    )
    components: dict[str, Any] = {"schemas": _schemas(settings)}
    if write_keys:
        components["securitySchemes"] = WRITE_KEY_SCHEMES
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamlearn collector",
            "version": streamlearn.__version__,
            "description": "Telemetry from browsers and apps into Kafka. See docs/collector.md.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Send one event or feedback item, or a batch of them.",
                    **({"security": keyed["security"]} if keyed else {}),
                    "requestBody": {
                        "required": True,
                        "content": {
                            media: {"schema": {"oneOf": [_ref("Item"), _ref("Batch")]}}
                            for media in (JSON, "text/plain")
                        },
                    },
                    "responses": {
                        "202": _json(_ref("Accepted"), "Kafka confirmed every item."),
                        "400": _json(
                            _ref("Error"),
                            "Not JSON, or an invalid item (nothing of the request was written).",
                        ),
                        **({"401": keyed["401"]} if keyed else {}),
                        "403": _json(_ref("Error"), forbidden),
                        "413": _json(
                            _ref("Error"),
                            f"Body over {settings.collector_max_body_bytes} bytes or more "
                            f"than {settings.collector_max_batch} items.",
                        ),
                        "415": _json(
                            _ref("Error"),
                            "A Content-Encoding other than identity, gzip, deflate, br, zstd.",
                        ),
                        **(
                            {"429": _retry_after("Over this address's rate (nothing written).")}
                            if settings.collector_rate_limit_per_ip is not None
                            else {}
                        ),
                        "503": _retry_after(
                            "Not handed to Kafka (written: none), or Kafka did not confirm "
                            "every event in time (written: partial)."
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "responses": {
                        "200": _json(_ref("Status"), "The process is up."),
                        "503": _json(
                            _ref("Status"),
                            "`stalled`: its Kafka producer gets no word from a broker while a "
                            "new client reaches them (`reason` says how long); restart it.",
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/streamlearn.js": {
                "get": {
                    "operationId": "browserTag",
                    "responses": {
                        "200": {
                            "description": "The browser tag (docs/browser.md).",
                            "content": {"text/javascript": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "Not modified (If-None-Match)."},
                    },
                }
            },
            "/streamlearn-{version}.js": {
                "get": {
                    "operationId": "pinnedBrowserTag",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "The collector's release; another is a 404.",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The browser tag of this release, cached a year.",
                            "content": {"text/javascript": {"schema": {"type": "string"}}},
                        },
                        "304": {"description": "Not modified (If-None-Match)."},
                        "404": _json(_ref("Error"), "Not this collector's release."),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": components,
    }
