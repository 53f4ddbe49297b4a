"""The OpenAPI document: valid OpenAPI 3.1, and it documents exactly the routes served."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate

from streamlearn.serving import create_serving_app
from streamlearn.serving.openapi import openapi_document
from streamlearn.settings import Settings


@pytest.fixture
def document() -> dict[str, Any]:
    return openapi_document(Settings(serve_max_instances=17))


def test_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)
    batch = document["components"]["schemas"]["BatchRequest"]
    assert batch["properties"]["instances"]["maxItems"] == 17


def test_every_route_is_documented_and_nothing_else() -> None:
    app = create_serving_app(Settings(), kafka=False)
    served = {
        (resource.canonical, route.method.lower())
        for resource in app.router.resources()
        for route in resource
        if route.method != "HEAD"
    }
    documented = {
        (path, method)
        for path, operations in openapi_document(Settings())["paths"].items()
        for method in operations
    }
    # The last route answers unknown paths (JSON 404/405): not part of the API.
    assert served - {("/openapi.json", "get"), ("/{tail}", "*")} == documented


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    ("name", "instance", "valid"),
    [
        ("PredictRequest", {"user_id": "u", "features": {"a": 1, "b": None}}, True),
        ("PredictRequest", {"instances": [{"user_id": "u", "features": {}}]}, True),
        ("PredictRequest", {"instances": []}, False),
        ("PredictRequest", {"user_id": "u"}, False),
        ("PredictRequest", {"user_id": "u", "features": {"a": [1]}}, False),
        # The worker reads an optional field sent as null as absent: so does the document.
        (
            "PredictRequest",
            {"user_id": "u", "features": {}, "context": None, "request_id": None},
            True,
        ),
        (
            "PredictRequest",
            {"instances": [{"user_id": "u", "features": {}}], "request_id": None},
            True,
        ),
        ("PredictRequest", {"user_id": None, "features": {}}, False),
        ("Error", {"error": "x", "field": None}, True),
        ("Error", {"error": "x"}, False),
    ],
)
def test_schemas_say_what_the_validation_does(
    document: dict[str, Any], name: str, instance: Any, valid: bool
) -> None:
    assert _validator(document, name).is_valid(instance) is valid


async def test_served_document_is_the_built_one() -> None:
    settings = Settings(serve_max_instances=5)
    async with TestClient(TestServer(create_serving_app(settings, kafka=False))) as client:
        response = await client.get("/openapi.json")
        assert response.status == 200
        assert await response.json() == openapi_document(settings)
        for path, name, status in [
            ("/healthz", "Status", 200),
            ("/readyz", "Status", 200),
            ("/v1/models", "ModelList", 200),
            ("/v1/models/ctr", "ModelInfo", 200),
            ("/v1/models/x", "Error", 404),
        ]:
            response = await client.get(path)
            assert response.status == status
            _validator(openapi_document(settings), name).validate(await response.json())


@pytest.mark.parametrize(
    "number",
    [
        "-9223372036854775809",  # one below a long: orjson reads it as the double -2^63
        "-9223372036854776808",
        "-9223372036854775808",  # the least long
        "9223372036854775807",  # the greatest
        "9223372036854775808",
        "-9.223372036854776e18",  # the double -2^63 itself
        "9.2e18",
        "-1e300",
    ],
)
def test_a_number_the_document_refuses_is_refused_and_one_it_takes_is_taken(
    document: dict[str, Any], number: str
) -> None:
    """Found by a new user: integers just below -2^63 were answered 200, while the worker's
    own document refused them (orjson reads such an integer as the double -2^63, which the
    float range took)."""
    import json

    from streamlearn.serving.exceptions import InvalidRequest
    from streamlearn.serving.validation import parse_predict

    body = f'{{"user_id": "u", "features": {{"x": {number}}}}}'
    documented = _validator(document, "PredictRequest").is_valid(json.loads(body))
    refused: InvalidRequest | None = None
    try:
        parse_predict(body.encode(), 256, frozenset())
    except InvalidRequest as exc:
        refused = exc
    assert (refused is None) == documented, (number, refused, documented)
    assert refused is None or refused.status == 422


def test_the_documents_white_space_is_pythons() -> None:
    """The identifiers' pattern refuses a string of only white space exactly as the worker
    and the collector do (str.isspace), whatever a JSON Schema regex calls white space."""
    import re
    import sys

    from streamlearn.serving.openapi import NOT_ONLY_WHITE_SPACE

    differing = [
        f"U+{code:04X}"
        for code in range(sys.maxunicode + 1)
        if (re.search(NOT_ONLY_WHITE_SPACE, chr(code)) is None) != chr(code).isspace()
    ]
    assert differing == []
