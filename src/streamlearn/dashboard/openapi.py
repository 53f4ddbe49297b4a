"""The OpenAPI 3.1 document of the dashboard, served at ``/openapi.json``.

The dashboard only reads: every operation is a ``GET`` without parameters. The document
says what each answers (the state's sections, the health body, the metrics and event-stream
content types) so the schema-driven fuzz test can hold the implementation to it
(``tests/integration/test_dashboard.py``).
"""

from __future__ import annotations

from typing import Any

import streamlearn
from streamlearn.dashboard.state import SECTIONS

JSON = "application/json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _state_schema() -> dict[str, Any]:
    sections: dict[str, Any] = {name: {} for name in SECTIONS}
    return {
        "type": "object",
        "required": ["server_time", "config", "rates", "counters", *SECTIONS],
        "properties": {
            "server_time": {"type": "number", "description": "Seconds since the epoch."},
            "config": {
                "type": "object",
                "required": ["topic_prefix", "window_s"],
                "properties": {
                    "topic_prefix": {"type": "string"},
                    "window_s": {"type": "number"},
                },
            },
            "rates": {"description": "The pipeline chart's series (rows of rates per topic)."},
            "counters": {"description": "The scraped processes' counters (rows)."},
            **sections,
        },
    }


def openapi_document() -> dict[str, Any]:
    """The dashboard's document (the same for every deployment: it takes no input)."""
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    }
    errors = {
        "type": "array",
        "items": {"type": "string"},
        "description": "What keeps the dashboard from reading its topics (the broker's "
        "or the schema registry's error); empty when nothing does.",
    }
    health = {
        "type": "object",
        "required": ["status", "topics", "missing", "errors"],
        "properties": {
            "status": {"const": "ok"},
            "topics": {
                "type": "object",
                "description": "Partitions assigned per followed topic.",
            },
            "missing": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Followed topics the cluster does not have (yet).",
            },
            "errors": errors,
        },
    }
    readiness = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["ready", "not ready"]}, "errors": errors},
    }

    def get(summary: str, ok: dict[str, Any]) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": ok}}}

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamlearn dashboard",
            "version": streamlearn.__version__,
            "description": "A live, read-only view of a running streamlearn system.",
        },
        "paths": {
            "/": get(
                "The page.",
                {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}},
            ),
            "/api/state": get("The whole state.", _json(_state_schema(), "The state.")),
            "/api/events": {
                "get": {
                    "summary": "The state, then a delta (or a heartbeat) each tick, as "
                    "server-sent events.",
                    "responses": {
                        "200": {
                            "description": "An event stream that ends when the client goes.",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "503": {
                            "description": "The most streams are open "
                            "(STREAMLEARN_DASHBOARD_MAX_EVENT_CLIENTS); try after Retry-After.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                    },
                }
            },
            "/healthz": get("Liveness and the followed topics.", _json(health, "Healthy.")),
            "/readyz": {
                "get": {
                    "summary": "Readiness: whether the topics can be read.",
                    "responses": {
                        "200": _json(readiness, "Ready."),
                        "503": _json(readiness, "Not ready: the errors say why."),
                    },
                }
            },
            "/metrics": get(
                "The dashboard's own Prometheus metrics.",
                {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
            ),
            "/openapi.json": get("This document.", _json({"type": "object"}, "The document.")),
        },
        "components": {"schemas": {"Error": error}},
    }
