"""The OpenAPI 3.1 document of a prediction worker, served at ``/openapi.json``.

Built from the settings (limits) and the models served (the path parameter's examples), and
checked against the implementation by the schema-driven fuzz test
(``tests/integration/test_serving.py``): every response the worker gives must be one this
document declares, with a body that validates against its schema.
"""

from __future__ import annotations

from typing import Any

import streamlearn
from streamlearn.models.inputs import NUMBER_LIMIT
from streamlearn.serving.validation import (
    MAX_FEATURES,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
)
from streamlearn.settings import Settings

JSON = "application/json"
PREDICTION_FIELDS = [
    "request_id",
    "user_id",
    "model_name",
    "model_version",
    "experiment",
    "arm",
    "score",
    "decision",
    "degraded",
    "degraded_reason",
    "capped",
]


NOT_ONLY_WHITE_SPACE = (
    "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)
"""A pattern a string matches when it holds a character that is not white space as
Python's ``str.isspace`` sees it."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _schemas(settings: Settings) -> dict[str, Any]:
    # Not only white space as Python sees it (str.isspace), which the collector refuses in
    # feedback's ids: a character outside that set.
    identifier = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_ID_CHARS,
        "pattern": NOT_ONLY_WHITE_SPACE,
    }
    text = {"type": "string", "maxLength": MAX_TEXT_CHARS}
    # A name models can tell from any other input: no "=" (one-hot inputs are name=value).
    name = {**identifier, "pattern": "^[^=]*$"}
    return {
        "FeatureValue": {
            "description": "A feature: null, boolean, a string of at most "
            f"{MAX_TEXT_CHARS} characters or a number strictly within ±2^63 (what a 64-bit "
            "integer holds; beyond it models cannot learn from it).",
            "anyOf": [
                {"type": ["null", "boolean"]},
                text,
                {
                    "type": "number",
                    "exclusiveMinimum": -NUMBER_LIMIT,
                    "exclusiveMaximum": NUMBER_LIMIT,
                },
            ],
        },
        "Instance": {
            "type": "object",
            "required": ["user_id", "features"],
            "additionalProperties": False,
            "properties": {
                "user_id": {**identifier, "description": "Routes the user to an arm."},
                "features": {
                    "type": "object",
                    "maxProperties": MAX_FEATURES,
                    "propertyNames": name,
                    "additionalProperties": _ref("FeatureValue"),
                    "description": "Features as the model should see them (and telemetry "
                    "logs); names without '='. A feature the model reads as a number "
                    "(numeric_features of GET /v1/models/{name}) refuses a string (422).",
                },
                "context": {
                    "type": ["object", "null"],
                    "maxProperties": MAX_FEATURES,
                    "propertyNames": name,
                    "additionalProperties": text,
                    "description": "Request context (placement, device...): ctx.<key> "
                    f"features, at most {MAX_FEATURES} with the features; null: none.",
                },
                "request_id": {
                    **identifier,
                    "type": ["string", "null"],
                    "description": "Id of this prediction; null: as if absent.",
                },
            },
        },
        "BatchRequest": {
            "type": "object",
            "required": ["instances"],
            "additionalProperties": False,
            "properties": {
                "instances": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": settings.serve_max_instances,
                    "items": _ref("Instance"),
                    "description": "Each instance's prediction gets its own request id (its "
                    "own, or <request_id>-<i>): two that would share one are a 422 naming "
                    "the second's request_id.",
                },
                "request_id": {
                    **identifier,
                    "type": ["string", "null"],
                    "description": "Id of the request; instance i without its own id gets "
                    "<request_id>-<i>; null: as if absent.",
                },
            },
        },
        "PredictRequest": {"oneOf": [_ref("BatchRequest"), _ref("Instance")]},
        "Prediction": {
            "type": "object",
            "additionalProperties": False,
            "required": PREDICTION_FIELDS,
            "properties": {
                "request_id": {"type": "string"},
                "user_id": {"type": "string"},
                "model_name": {"type": "string", "description": "The model that answered."},
                "model_version": {
                    "type": ["integer", "null"],
                    "description": "Version of the model state; null when the fallback served.",
                },
                "experiment": {"type": ["string", "null"]},
                "arm": {"type": ["string", "null"]},
                "score": {"type": "number", "description": "Score after clamping."},
                "decision": {"type": ["string", "null"]},
                "degraded": {"type": "boolean"},
                "degraded_reason": {
                    "enum": ["no_model", "stale_model", "model_error", None],
                },
                "capped": {
                    "type": "boolean",
                    "description": "The positive-decision cap replaced the decision.",
                },
            },
        },
        "PredictResponse": {
            "type": "object",
            "additionalProperties": False,
            "required": ["request_id", "model_name", "predictions"],
            "properties": {
                "request_id": {"type": "string"},
                "model_name": {"type": "string"},
                "predictions": {"type": "array", "items": _ref("Prediction")},
            },
        },
        "ModelInfo": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "loaded", "configured"],
            "properties": {
                "name": {"type": "string"},
                "loaded": {"type": "boolean"},
                "configured": {"type": "boolean"},
                "version": {"type": "integer"},
                "parent_version": {"type": ["integer", "null"]},
                "created_ts": {"type": "string", "format": "date-time"},
                "age_s": {"type": "number"},
                "loaded_at": {"type": "string", "format": "date-time"},
                "published_ts": {"type": ["string", "null"], "format": "date-time"},
                "freshness_ms": {
                    "type": ["number", "null"],
                    "description": "Published to model.state → served, for a snapshot "
                    "published while this worker ran (null for one published before).",
                },
                "trained_examples": {"type": "integer"},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                "spec": {"type": "string"},
                "numeric_features": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Features the model reads as numbers (and, under an "
                    "experiment, its arms' models): a string sent for one is refused (422); "
                    "null means missing.",
                },
            },
        },
        "ModelList": {
            "type": "object",
            "additionalProperties": False,
            "required": ["models"],
            "properties": {"models": {"type": "array", "items": _ref("ModelInfo")}},
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"enum": ["ok", "stalled", "ready", "not_ready"]},
                "reason": {"type": "string"},
                "missing": {"type": "array", "items": {"type": "string"}},
                "unpublished": {"type": "array", "items": {"type": "string"}},
                "caught_up": {"type": "boolean"},
            },
        },
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error", "field"],
            "properties": {
                "error": {"type": "string", "description": "What is wrong."},
                "field": {
                    "type": ["string", "null"],
                    "description": "Where, e.g. instances[2].features.price, or body.",
                },
            },
        },
    }


def _with_bearer(document: dict[str, Any]) -> dict[str, Any]:
    """The API's operations (/v1) need a bearer token: say so, and that 401 answers."""
    document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, methods in document["paths"].items():
        if path.startswith("/v1/"):
            for operation in methods.values():
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = _error("No valid bearer token.")
    return document


def openapi_document(settings: Settings) -> dict[str, Any]:
    document = _document(settings)
    return _with_bearer(document) if settings.serve_api_tokens else document


def _document(settings: Settings) -> dict[str, Any]:
    name_param = {
        "name": "name",
        "in": "path",
        "required": True,
        # No '/' (one path segment) and no ':' (GET of a name with ':' is the predict
        # route's 405): a spec's name, or a per-arm model's (ctr@treatment, ctr~newest).
        "schema": {"type": "string", "pattern": "^[^/:]+$"},
        "description": "Model name (a configured spec, or a loaded per-arm model).",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamlearn prediction worker",
            "version": streamlearn.__version__,
            "description": "Predictions from the newest verified model state, with experiment "
            "routing, business rules and graceful degradation. See docs/serving.md.",
        },
        "paths": {
            "/v1/models/{name}:predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Score one instance or a batch.",
                    "parameters": [name_param],
                    "requestBody": {
                        "required": True,
                        "content": {JSON: {"schema": _ref("PredictRequest")}},
                    },
                    "responses": {
                        "200": _json(_ref("PredictResponse"), "Predictions, maybe degraded."),
                        "400": _error("The body is not JSON."),
                        "404": _error("No such model."),
                        "413": _error(f"Body over {settings.serve_max_body_bytes} bytes."),
                        "415": _error(
                            "A Content-Type other than application/json (or a +json type; "
                            "field Content-Type), or a Content-Encoding other than identity, "
                            "gzip, deflate, br, zstd (field Content-Encoding)."
                        ),
                        "422": _error(
                            "The JSON does not fit the request schema (e.g. more than "
                            f"{settings.serve_max_instances} instances)."
                        ),
                    },
                }
            },
            "/v1/models": {
                "get": {
                    "operationId": "listModels",
                    "summary": "Models served: versions loaded, age, metrics.",
                    "responses": {"200": _json(_ref("ModelList"), "Every model.")},
                }
            },
            "/v1/models/{name}": {
                "get": {
                    "operationId": "getModel",
                    "summary": "One model.",
                    "parameters": [name_param],
                    "responses": {
                        "200": _json(_ref("ModelInfo"), "The model."),
                        "404": _error("No such model."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness.",
                    "responses": {
                        "200": _json(_ref("Status"), "The process is alive."),
                        "503": _json(
                            _ref("Status"),
                            "`stalled`: its telemetry producer gets no word from a broker "
                            "while a new client reaches them (`reason` says how long); every "
                            "prediction's record is lost until it is restarted.",
                        ),
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Ready when every published model is loaded.",
                    "responses": {
                        "200": _json(_ref("Status"), "Ready."),
                        "503": _json(
                            _ref("Status"),
                            "Not ready: catching up on model.state, or `missing` lists published "
                            "models none of whose snapshots could be loaded.",
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics.",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
        "components": {"schemas": _schemas(settings)},
    }
