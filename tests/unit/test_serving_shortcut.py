"""The worker's shortcut for predictions: which requests it answers, which it leaves to the
Application, and that it answers them as the router's route would (the API's own tests run
through both servers: ``test_serving_api.py``)."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest import mock

import orjson
import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import TestClient, make_mocked_request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from streamlearn.serving import SERVING, api, create_serving_app
from streamlearn.serving.shortcut import PREDICT_PATH, PREDICT_SHORTCUT, ServingRunner
from streamlearn.settings import Settings
from tests.serving_support import WorkerTestServer, instances, loaded

ROUTED = create_serving_app(Settings(models=["ctr"]), kafka=False)
ROUTED.freeze()


def _routed(path: str) -> web.UrlMappingMatchInfo:
    request = make_mocked_request("POST", path, app=ROUTED)
    return asyncio.run(ROUTED.router.resolve(request))  # type: ignore[return-value]


@given(
    st.one_of(
        st.text(alphabet="ab:@.-_%/?#{}+ ~é\n", max_size=14).map(
            lambda middle: f"/v1/models/{middle}:predict"
        ),
        st.text(alphabet="/v1modelsctr:predict@%?", max_size=40),
    )
)
def test_every_path_the_shortcut_takes_is_the_predict_route_with_the_same_name(
    path: str,
) -> None:
    found = PREDICT_PATH.fullmatch(path)
    if found is None:
        return  # left to the router
    matched = _routed(path)
    assert matched.handler is api.predict
    assert matched["name"] == found[1]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/models/ctr:predict",
        "/v1/models/ctr@b:predict",
        "/v1/models/a.b-c_d:predict",
    ],
)
def test_the_names_the_shortcut_takes_are_the_router_s(path: str) -> None:
    found = PREDICT_PATH.fullmatch(path)
    assert found is not None
    assert _routed(path)["name"] == found[1]


def _posted(path: str, body: bytes, headers: dict[str, str] | None = None) -> web.Request:
    """A request as the server hands it over: no router has looked at it (no match
    information)."""
    payload = StreamReader(mock.Mock(), 2**16, loop=asyncio.get_running_loop())
    payload.feed_data(body)
    payload.feed_eof()
    headers = {"Content-Type": "application/json", **(headers or {})}
    return make_mocked_request("POST", path, headers, payload=payload)


class _Application:
    """What the shortcut hands the rest to: counts them and answers 299."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        self.paths.append(request.raw_path)
        return web.Response(status=299)


def _served(settings: Settings) -> web.Application:
    app = create_serving_app(settings, kafka=False)
    app[SERVING].store.put(loaded(3))
    return app


async def test_a_prediction_is_answered_without_the_application() -> None:
    app = _served(Settings(models=["ctr"]))
    through_app = _Application()
    answer = app[PREDICT_SHORTCUT].handler(through_app)
    body = orjson.dumps({"instances": instances(2)})
    response = await answer(_posted("/v1/models/ctr:predict", body))
    assert isinstance(response, web.Response)
    assert response.body is not None
    assert response.status == 200
    predictions = orjson.loads(response.body)["predictions"]  # type: ignore[arg-type]
    assert [p["model_version"] for p in predictions] == [3, 3]
    # Its mistakes are answered (and counted) as the route answers them.
    unknown = await answer(_posted("/v1/models/nope:predict", body))
    assert unknown.status == 404
    assert orjson.loads(unknown.body)["field"] == "name"  # type: ignore[attr-defined]
    refused = app[SERVING].metrics.refused.labels(status="404")._value.get()
    assert refused == 1
    assert through_app.paths == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v1/models/ct%72:predict", {}),  # the router decodes it
        ("/v1/models/ctr:predict?debug=1", {}),
        ("/v1/models/ctr:predict/", {}),
        ("/v1/models/ctr:Predict", {}),
        ("/v1/models/ctr:predict:predict", {}),  # a name with ':', the router's to split
        ("/v1/models/ctr", {}),
        ("/v1/models/ctr:predict", {"Expect": "100-continue"}),
    ],
)
async def test_what_the_shortcut_does_not_take_goes_to_the_application(
    path: str, headers: dict[str, str]
) -> None:
    through_app = _Application()
    answer = _served(Settings(models=["ctr"]))[PREDICT_SHORTCUT].handler(through_app)
    response = await answer(_posted(path, b"{}", headers))
    assert response.status == 299
    assert through_app.paths == [path]


async def test_other_methods_go_to_the_application() -> None:
    through_app = _Application()
    answer = _served(Settings(models=["ctr"]))[PREDICT_SHORTCUT].handler(through_app)
    response = await answer(make_mocked_request("GET", "/v1/models/ctr:predict"))
    assert response.status == 299


async def test_with_api_tokens_only_requests_carrying_one_are_answered_by_it() -> None:
    through_app = _Application()
    settings = Settings(models=["ctr"], serve_api_tokens=[SecretStr("right-token-01234")])
    answer = _served(settings)[PREDICT_SHORTCUT].handler(through_app)
    body = orjson.dumps({"instances": instances(1)})
    path = "/v1/models/ctr:predict"
    for given_token in (None, "Bearer wrong", "Basic right-token-01234", "Bearer"):
        headers = {} if given_token is None else {"Authorization": given_token}
        assert (await answer(_posted(path, body, headers))).status == 299
    accepted = await answer(_posted(path, body, {"Authorization": "Bearer right-token-01234"}))
    assert accepted.status == 200
    assert len(through_app.paths) == 4


async def test_with_api_tokens_the_refusals_are_the_application_s() -> None:
    settings = Settings(models=["ctr"], serve_api_tokens=[SecretStr("right-token-01234")])
    async with TestClient(WorkerTestServer(_served(settings))) as client:
        body = {"instances": instances(1)}
        refused = await client.post("/v1/models/ctr:predict", json=body)
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await refused.json())["field"] == "Authorization"
        accepted = await client.post(
            "/v1/models/ctr:predict",
            json=body,
            headers={"Authorization": "Bearer right-token-01234"},
        )
        assert accepted.status == 200
        assert (await accepted.json())["predictions"][0]["model_version"] == 3


async def test_the_requests_it_leaves_are_answered_by_the_router() -> None:
    async with TestClient(WorkerTestServer(_served(Settings(models=["ctr"])))) as client:
        body = {"instances": instances(1)}
        for path in ("/v1/models/ct%72:predict", "/v1/models/ctr:predict?debug=1"):
            response = await client.post(path, json=body)
            assert response.status == 200, path
            assert (await response.json())["predictions"][0]["model_version"] == 3
        expecting = await client.post("/v1/models/ctr:predict", json=body, expect100=True)
        assert expecting.status == 200
        wrong_method = await client.get("/v1/models/ctr:predict")
        assert wrong_method.status == 405
        assert (await wrong_method.json())["error"]


async def _installed(app: web.Application) -> bool:
    runner = ServingRunner(app)
    await runner.setup()
    try:
        assert runner.server is not None
        handler: Any = runner.server.request_handler
        return "PredictShortcut" in handler.__qualname__
    finally:
        await runner.cleanup()


async def test_the_runner_installs_it_only_on_an_app_as_it_was_made() -> None:
    assert await _installed(create_serving_app(Settings(models=["ctr"]), kafka=False))
    tokens = Settings(models=["ctr"], serve_api_tokens=[SecretStr("token-0123456789ab")])
    assert await _installed(create_serving_app(tokens, kafka=False))

    @web.middleware
    async def another(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request)  # type: ignore[no-any-return]

    grown = create_serving_app(Settings(models=["ctr"]), kafka=False)
    grown.middlewares.append(another)
    assert not await _installed(grown)

    async def prepare(request: web.Request, response: web.StreamResponse) -> None:
        return None

    signalled = create_serving_app(Settings(models=["ctr"]), kafka=False)
    signalled.on_response_prepare.append(prepare)
    assert not await _installed(signalled)
    assert not await _installed(web.Application())


def test_the_api_s_tokens_are_not_in_what_it_shows_of_itself() -> None:
    settings = Settings(models=["ctr"], serve_api_tokens=[SecretStr("s3cret-token-0123")])
    shortcut = create_serving_app(settings, kafka=False)[PREDICT_SHORTCUT]
    assert shortcut.secrets == [b"s3cret-token-0123"]
    assert "s3cret" not in repr(shortcut)
