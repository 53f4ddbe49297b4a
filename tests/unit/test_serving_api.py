"""The prediction API without a broker: models put into the store directly (``kafka=False``)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr, ValidationError

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS, BusinessRules
from streamlearn.serving import SERVING, create_serving_app
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.serving.validation import MAX_FEATURES, MAX_INSTANCE_BYTES, MAX_TEXT_CHARS
from streamlearn.settings import Settings
from tests.serving_support import WorkerTestServer, instances, loaded

JSON_TYPE = {"Content-Type": "application/json"}


@pytest.fixture
def settings() -> Settings:
    return Settings(
        models=["ctr", "conversion_value"], serve_max_instances=8, serve_max_body_bytes=4096
    )


@pytest.fixture
def app(settings: Settings) -> web.Application:
    return create_serving_app(settings, kafka=False)


@pytest.fixture(params=["router", "shortcut"])
async def client(
    app: web.Application, request: pytest.FixtureRequest
) -> AsyncIterator[TestClient[Any, Any]]:
    """The app behind aiohttp's own runner (every request through the router) and behind
    the worker's (``serve``: predictions answered before the router): the same answers."""
    server = TestServer(app) if request.param == "router" else WorkerTestServer(app)
    async with TestClient(server) as client:
        yield client


async def _predict(client: TestClient[Any, Any], body: Any, model: str = "ctr") -> Any:
    response = await client.post(f"/v1/models/{model}:predict", json=body)
    return response.status, await response.json()


async def test_no_model_yet_is_a_degraded_fallback(client: TestClient[Any, Any]) -> None:
    status, body = await _predict(client, instances(1)[0])
    assert status == 200
    [prediction] = body["predictions"]
    assert prediction["degraded"] is True
    assert prediction["degraded_reason"] == "no_model"
    assert prediction["model_version"] is None
    assert prediction["score"] == 0.02
    assert prediction["decision"] == "skip"
    # Nothing published: ready, the fallback answers (and so trains the first model).
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["unpublished"] == ["ctr", "conversion_value"]


async def test_before_model_state_is_read_no_model_is_said_to_be_unpublished(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """Whether a model was published is known only once model.state is read: before, a
    worker whose Kafka is away said every model was `unpublished`."""
    import asyncio
    from types import SimpleNamespace

    app[SERVING].follower = SimpleNamespace(caught_up=asyncio.Event())  # type: ignore[assignment]
    response = await client.get("/readyz")
    assert response.status == 503
    assert await response.json() == {
        "status": "not_ready", "missing": ["ctr", "conversion_value"], "unpublished": [],
        "caught_up": False,
    }  # fmt: skip
    app[SERVING].follower.caught_up.set()  # type: ignore[union-attr]
    response = await client.get("/readyz")
    assert (response.status, (await response.json())["unpublished"]) == (
        200, ["ctr", "conversion_value"],
    )  # fmt: skip


async def test_loaded_models_serve_and_ready_flips(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    store = app[SERVING].store
    store.saw_snapshot("ctr")
    store.saw_snapshot("conversion_value")
    assert (await client.get("/readyz")).status == 503
    store.put(loaded(3))
    assert (await client.get("/readyz")).status == 503
    store.put(loaded(1, spec_name="conversion_value"))
    assert (await client.get("/readyz")).status == 200
    batch = instances(5)
    status, body = await _predict(client, {"instances": batch, "request_id": "r"})
    assert status == 200
    assert [p["request_id"] for p in body["predictions"]] == [f"r-{i}" for i in range(5)]
    assert {p["model_version"] for p in body["predictions"]} == {3}
    assert not any(p["degraded"] for p in body["predictions"])
    assert all(0 <= p["score"] <= 1 for p in body["predictions"])
    single = {**batch[0], "request_id": "only"}
    status, body = await _predict(client, single)
    assert body["predictions"][0]["request_id"] == "only"
    info = await (await client.get("/v1/models/ctr")).json()
    assert info["version"] == 3
    assert info["metrics"] == {"auc": 0.7}
    listed = await (await client.get("/v1/models")).json()
    assert [m["name"] for m in listed["models"]] == ["conversion_value", "ctr"]
    metrics = await (await client.get("/metrics")).text()
    assert 'streamlearn_serve_predictions_total{arm="",model="ctr"} 6.0' in metrics
    assert "streamlearn_serve_model_age_seconds" in metrics


async def test_stale_model_is_degraded(client: TestClient[Any, Any], app: web.Application) -> None:
    old = datetime.now(UTC) - timedelta(hours=2)  # ctr's limit is one hour
    app[SERVING].store.put(loaded(4, created=old))
    _status, body = await _predict(client, instances(1)[0])
    assert body["predictions"][0]["degraded_reason"] == "stale_model"
    metrics = await (await client.get("/metrics")).text()
    assert 'streamlearn_serve_degraded_predictions_total{model="ctr",reason="stale_model"}' in (
        metrics
    )
    assert 'streamlearn_serve_alerts_total{kind="stale_model"} 1.0' in metrics


class _Broken:
    """A model that raises on every prediction."""

    def predict_proba_one(self, x: Any) -> Any:
        raise RuntimeError("boom")


def _serve_broken_model(app: web.Application) -> None:
    model = loaded(2)
    object.__setattr__(model, "model", _Broken())
    app[SERVING].store.put(model)


async def test_model_error_is_degraded(client: TestClient[Any, Any], app: web.Application) -> None:
    _serve_broken_model(app)
    status, body = await _predict(client, instances(1)[0])
    assert status == 200
    assert body["predictions"][0]["degraded_reason"] == "model_error"


async def test_a_model_failing_on_every_instance_logs_one_traceback_per_interval(
    client: TestClient[Any, Any], app: web.Application, caplog: pytest.LogCaptureFixture
) -> None:
    """Any client could make the worker write a traceback per instance (a feature value
    the model cannot take): batches of 256 wrote ~150 KB of log each."""
    _serve_broken_model(app)
    with caplog.at_level(logging.ERROR, logger="streamlearn.serving.predictor"):
        for _ in range(3):
            status, body = await _predict(client, {"instances": instances(8)})
            assert status == 200
            assert {p["degraded_reason"] for p in body["predictions"]} == {"model_error"}
    failures = [r for r in caplog.records if r.name == "streamlearn.serving.predictor"]
    assert len(failures) == 1
    assert failures[0].exc_info is not None  # the first keeps its traceback
    metrics = await (await client.get("/metrics")).text()
    assert (
        'streamlearn_serve_degraded_predictions_total{model="ctr",reason="model_error"} 24.0'
        in metrics
    )


async def test_experiment_routes_users_to_arm_models(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    serving = app[SERVING]
    serving.store.put(loaded(5))
    serving.store.put(loaded(9, model_name="ctr@treatment"))
    serving.book.put(
        Experiment(
            name="e1",
            salt="x",
            arms=(Arm("control", "ctr", 1.0), Arm("treatment", "ctr@treatment", 1.0)),
        )
    )
    _, body = await _predict(client, {"instances": instances(8)})
    arms = {p["arm"]: p["model_version"] for p in body["predictions"]}
    assert arms == {"control": 5, "treatment": 9}
    assert {p["experiment"] for p in body["predictions"]} == {"e1"}
    again = await _predict(client, {"instances": instances(8)})
    assert [p["arm"] for p in again[1]["predictions"]] == [p["arm"] for p in body["predictions"]]


async def test_an_arm_of_a_model_this_worker_does_not_serve_answers_its_spec_s_fallback(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """Found by a new user: an arm served by `ctr_tree` on a worker whose
    STREAMLEARN_MODELS is only `ctr` (`experiments set` warns of it) answered score 0.0 and
    decision null, rules of no spec, while `ctr_tree`'s own fallback is 0.02 and `skip`: an
    app acting on the decision got nothing to act on for that arm's users."""
    arms = (Arm("control", "ctr", 0.0), Arm("tree", "ctr_tree", 1.0))  # everyone: tree
    app[SERVING].book.put(Experiment(name="e1", salt="x", arms=arms))
    _, body = await _predict(client, {"user_id": "u", "features": {"price": 3.0}})
    [prediction] = body["predictions"]
    rules = SPECS["ctr_tree"].rules
    assert (prediction["model_name"], prediction["degraded_reason"]) == ("ctr_tree", "no_model")
    assert (prediction["score"], prediction["decision"]) == (
        rules.fallback_score,
        rules.fallback_decision,
    )


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"features": {}}, 422, "user_id"),
        ({"user_id": "u"}, 422, "features"),
        ({"user_id": 3, "features": {}}, 422, "user_id"),
        ({"user_id": "", "features": {}}, 422, "user_id"),
        ({"user_id": "u", "features": []}, 422, "features"),
        ({"user_id": "u", "features": {"a": [1]}}, 422, "features.a"),
        ({"user_id": "u", "features": {"a": 10**400}}, 422, "features.a"),
        ({"user_id": "u", "features": {}, "context": {"p": 1}}, 422, "context.p"),
        ({"user_id": "u", "features": {}, "feature": {}}, 422, "feature"),
        ({"instances": []}, 422, "instances"),
        ({"instances": {}}, 422, "instances"),
        ({"instances": [{"user_id": "u", "features": {}}, 3]}, 422, "instances[1]"),
        ({"instances": [{"user_id": "u", "features": {"x": {}}}]}, 422, "instances[0].features.x"),
        ({"instances": [{"user_id": "u", "features": {}}] * 9}, 422, "instances"),
        ({"instances": [], "x": 1}, 422, "x"),
        ([1], 422, "body"),
    ],
)
async def test_client_mistakes_name_the_field(
    client: TestClient[Any, Any], body: Any, status: int, field: str
) -> None:
    got, error = await _predict(client, body)
    assert (got, error["field"]) == (status, field), error


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"\xff\xfe", b'{"user_id": NaN}', b'{"user_id": "\\ud800", "features": {}}'],
)
async def test_malformed_json_is_400(client: TestClient[Any, Any], raw: bytes) -> None:
    response = await client.post("/v1/models/ctr:predict", data=raw, headers=JSON_TYPE)
    assert response.status == 400
    assert (await response.json())["field"] == "body"


async def test_body_over_the_limit_is_413(client: TestClient[Any, Any]) -> None:
    response = await client.post("/v1/models/ctr:predict", data=b" " * 5000, headers=JSON_TYPE)
    assert response.status == 413
    assert (await response.json()) == {"error": "request body over 4096 bytes", "field": "body"}


async def test_unknown_model_and_route(client: TestClient[Any, Any]) -> None:
    status, body = await _predict(client, instances(1)[0], model="nope")
    assert (status, body["field"]) == (404, "name")
    assert (await client.get("/v1/models/nope")).status == 404
    response = await client.get("/nowhere")
    assert response.status == 404
    assert (await response.json())["field"] is None
    for path in ("/v1/models/", "/v1/models/%0A", "/%0A/x", "/v1/models/a%0Ab/c"):
        response = await client.get(path)
        assert response.status == 404, path
        assert response.content_type == "application/json", path
    response = await client.delete("/v1/models")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert await response.json() == {"error": "Method Not Allowed", "field": None}
    for method in ("PUT", "GET"):  # GET was taken for /v1/models/{name} of 'ctr:predict'
        response = await client.request(method, "/v1/models/ctr:predict")
        assert response.status == 405, method
        assert response.headers["Allow"] == "POST"
    assert (await client.post("/healthz")).status == 405


async def test_bodies_that_used_to_be_500s_are_400s(client: TestClient[Any, Any]) -> None:
    """Nested deeper than the parsers recurse; not the gzip its Content-Encoding says."""
    for raw, headers in (
        (b"[" * 2000 + b"]" * 2000, {}),
        (b'{"user_id": "u", "features": {}}', {"Content-Encoding": "gzip"}),
    ):
        response = await client.post(
            "/v1/models/ctr:predict", data=raw, headers={**JSON_TYPE, **headers}
        )
        assert response.status == 400, raw[:40]
        assert (await response.json())["field"] == "body"
    status, _ = await _predict(client, instances(1)[0])
    assert status == 200


async def test_every_content_encoding_is_decoded_or_refused_as_json(
    client: TestClient[Any, Any],
) -> None:
    """Found by a new user: `br` and `zstd` were 400s in text/plain from aiohttp's parser
    (its libraries missing) with an ERROR traceback in the log; `foo` was read as identity;
    a broken gzip body's message quoted aiohttp."""
    import gzip

    import brotli
    from backports import zstd

    body = orjson.dumps(instances(1)[0])
    for encoding, encoded in (
        ("gzip", gzip.compress(body)),
        ("br", brotli.compress(body)),
        ("zstd", zstd.compress(body)),
    ):
        response = await client.post(
            "/v1/models/ctr:predict",
            data=encoded,
            headers={**JSON_TYPE, "Content-Encoding": encoding},
        )
        assert response.status == 200, (encoding, await response.text())
    refusals = {
        "foo": (415, "Content-Encoding foo: not one of identity, gzip, deflate, br, zstd",
                "Content-Encoding"),
        "gzip": (400, "the body does not decode as its Content-Encoding gzip says", "body"),
        "gzip, br": (415, "Content-Encoding gzip, br: not one of identity, gzip, deflate, br, "
                     "zstd", "Content-Encoding"),  # aiohttp would read it as identity
    }  # fmt: skip
    for encoding, (status, error, field) in refusals.items():
        response = await client.post(
            "/v1/models/ctr:predict", data=body, headers={**JSON_TYPE, "Content-Encoding": encoding}
        )
        assert response.status == status
        assert await response.json() == {"error": error, "field": field}


def _notes(chars: int) -> dict[str, str]:
    """String features of ``chars`` characters in all, each at most ``MAX_TEXT_CHARS``."""
    return {
        f"note{i}": "x" * min(MAX_TEXT_CHARS, chars - start)
        for i, start in enumerate(range(0, chars, MAX_TEXT_CHARS))
    }


async def test_an_instance_whose_record_kafka_would_refuse_is_a_413_not_a_lost_record() -> None:
    """A 1,040,067-byte instance under the 1 MiB body limit was answered 200, and its
    PredictionServed record, over the producer's 1,000,000-byte message limit, was
    dropped: a prediction never logged nor learned from."""
    settings = Settings(models=["ctr"], serve_max_body_bytes=4 * 1024 * 1024)
    async with TestClient(WorkerTestServer(create_serving_app(settings, kafka=False))) as client:
        [small] = instances(1)
        big = {**small, "features": {**small["features"], **_notes(MAX_INSTANCE_BYTES)}}
        status, body = await _predict(client, big)
        assert (status, body["field"]) == (413, "body"), body
        assert f"at most {MAX_INSTANCE_BYTES:,} bytes" in body["error"]
        status, body = await _predict(client, {"instances": [small, big]})
        assert (status, body["field"]) == (413, "instances[1]"), body
        fits = {**small, "features": _notes(MAX_INSTANCE_BYTES - 5_000)}
        short = MAX_INSTANCE_BYTES - 100 - len(orjson.dumps(fits)) - len(',"pad":""')
        fits["features"]["pad"] = "x" * short  # 100 bytes under the bound
        assert len(orjson.dumps(fits)) == MAX_INSTANCE_BYTES - 100
        assert len(orjson.dumps({"instances": [fits, small]})) > MAX_INSTANCE_BYTES
        status, body = await _predict(client, {"instances": [fits, small]})
        assert status == 200, body
        # An integer beyond 64 bits in a large body (which orjson cannot measure): named,
        # not a 500.
        notes = fits["features"]
        wide = {**small, "features": {**notes, "big": 2**70}}
        assert (
            len(orjson.dumps({"instances": [{**wide, "features": notes}, small]}))
            > MAX_INSTANCE_BYTES
        )  # a large body: its instances are measured
        status, body = await _predict(client, {"instances": [wide, small]})
        assert (status, body["field"]) == (422, "instances[0].features.big"), body


async def test_two_predictions_of_a_request_never_share_a_request_id(
    client: TestClient[Any, Any],
) -> None:
    """Feedback joins a prediction by its request id: two with one id would have the second
    dropped as a duplicate by label-join, and its feedback joined to the first."""
    a, b, c = instances(3)
    for body, field in (
        ({"instances": [{**a, "request_id": "same"}, {**b, "request_id": "same"}]},
         "instances[1].request_id"),
        ({"instances": [a, {**b, "request_id": "r9-0"}], "request_id": "r9"},
         "instances[1].request_id"),
        ({"instances": [{**a, "request_id": "r9-2"}, b, c], "request_id": "r9"},
         "instances[0].request_id"),
    ):  # fmt: skip
        status, error = await _predict(client, body)
        assert (status, error["field"]) == (422, field), error
    status, body = await _predict(
        client, {"instances": [{**a, "request_id": "x"}, b], "request_id": "r9"}
    )
    assert status == 200
    assert [p["request_id"] for p in body["predictions"]] == ["x", "r9-1"]


async def test_a_batch_of_one_names_its_prediction_as_every_batch_does(
    client: TestClient[Any, Any],
) -> None:
    """Instance *i* of a batch is ``<request_id>-<i>`` however many the batch holds: a
    client sending feedback for ``solo-0`` must find the prediction it got."""
    [a] = instances(1)
    status, body = await _predict(client, {"instances": [a], "request_id": "solo"})
    assert status == 200
    assert (body["request_id"], [p["request_id"] for p in body["predictions"]]) == (
        "solo", ["solo-0"],
    )  # fmt: skip
    status, body = await _predict(client, {**a, "request_id": "one"})
    assert [p["request_id"] for p in body["predictions"]] == ["one"]
    status, body = await _predict(client, {"instances": [a]})
    made = body["request_id"]
    assert [p["request_id"] for p in body["predictions"]] == [f"{made}-0"]


def test_without_api_tokens_the_app_runs_no_middleware() -> None:
    # aiohttp's middleware chain cost ~6 µs of CPU per request: handlers answer their own
    # errors as JSON instead (the tests above), so the open API has no middleware.
    assert not create_serving_app(Settings(), kafka=False).middlewares
    guarded = create_serving_app(
        Settings(serve_api_tokens=[SecretStr("token-0123456789ab")]), kafka=False
    )
    assert len(guarded.middlewares) == 2


async def test_with_api_tokens_refusals_and_unknown_paths_are_json() -> None:
    app = create_serving_app(
        Settings(serve_api_tokens=[SecretStr("token-0123456789ab")]), kafka=False
    )
    async with TestClient(WorkerTestServer(app)) as client:
        refused = await client.post("/v1/models/ctr:predict", json=instances(1)[0])
        assert refused.status == 401
        assert "Bearer" in refused.headers["WWW-Authenticate"]
        assert (await refused.json())["field"] == "Authorization"
        headers = {"Authorization": "Bearer token-0123456789ab"}
        ok = await client.post("/v1/models/ctr:predict", json=instances(1)[0], headers=headers)
        assert ok.status == 200
        missing = await client.get("/nowhere")
        assert (missing.status, (await missing.json())["field"]) == (404, None)
        bad = await client.post(
            "/v1/models/ctr:predict", data=b"{", headers={**JSON_TYPE, **headers}
        )
        assert (bad.status, (await bad.json())["field"]) == (400, "body")


async def test_every_refusal_is_counted_by_its_status() -> None:
    """401 (no token), 405 and an unknown path's 404 were answered but not counted: failed
    authentication could be neither seen nor alerted on."""
    app = create_serving_app(
        Settings(serve_api_tokens=[SecretStr("token-0123456789ab")]), kafka=False
    )
    headers = {"Authorization": "Bearer token-0123456789ab"}
    async with TestClient(WorkerTestServer(app)) as client:
        assert (await client.post("/v1/models/ctr:predict", json={})).status == 401
        assert (await client.get("/v1/models/ctr:predict", headers=headers)).status == 405
        assert (await client.get("/nowhere", headers=headers)).status == 404
        assert (await client.post("/v1/models/no:predict", headers=headers, json={})).status == 404
        text = await (await client.get("/metrics", headers=headers)).text()
    counted = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamlearn_serve_refused_requests_total{")
    }
    assert counted == {"401": 1.0, "404": 2.0, "405": 1.0}


async def test_huge_float_literal_is_422(client: TestClient[Any, Any]) -> None:
    raw = b'{"user_id": "u", "features": {"a": 1e400}}'
    response = await client.post("/v1/models/ctr:predict", data=raw, headers=JSON_TYPE)
    assert (response.status, (await response.json())["field"]) == (422, "features.a")


async def test_numbers_beyond_a_64_bit_integer_are_422_naming_the_feature(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """Any finite double was taken, and what a worker serves becomes a training example:
    one prediction of ``hour`` 1e308 made the learner's ``learn`` raise (its cyclic
    transform's angle is infinite), one of ``price`` 1e300 left ``ctr_tree`` scoring 30x
    lower for good (its Gaussian statistics overflow). Numbers are held to what a 64-bit
    integer holds; integers beyond 64 bits were read as doubles, and are refused too."""
    app[SERVING].store.put(loaded(1))
    for big in (2**63, 2**64, 2**70, -(2**64), -(2**63), -(2**63) - 1, 1e19, -1e300, 1e308):
        status, body = await _predict(client, {"user_id": "u", "features": {"price": big}})
        assert (status, body["field"]) == (422, "features.price"), (big, body)
        assert "2^63" in body["error"]
    batch = {"instances": [{"user_id": "u", "features": {"hour": 3}},
                           {"user_id": "v", "features": {"hour": 1e308}}]}  # fmt: skip
    status, body = await _predict(client, batch)
    assert (status, body["field"]) == (422, "instances[1].features.hour")
    for fine in (2**63 - 1, -(2**63) + 1, 9.2e18, -9.2e18, 1e15, 0.5):
        status, body = await _predict(client, {"user_id": "u", "features": {"price": fine}})
        assert status == 200, (fine, body)


async def test_an_identifier_of_only_white_space_is_422_naming_it(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """Found by a new user: `user_id` and `request_id` "   " were answered 200, and the
    collector refuses feedback whose request_id is only white space (as Python sees it,
    U+0085 too): such a prediction could never be labelled."""
    app[SERVING].store.put(loaded(1))
    for blank in ("   ", "\u0085", "\t\n"):
        for body, field in (
            ({"user_id": blank, "features": {}}, "user_id"),
            ({"user_id": "u", "features": {}, "request_id": blank}, "request_id"),
            ({"instances": [{"user_id": "u", "features": {}}], "request_id": blank}, "request_id"),
            ({"instances": [{"user_id": blank, "features": {}}]}, "instances[0].user_id"),
        ):
            status, answer = await _predict(client, body)
            assert (status, answer["field"]) == (422, field), (blank, body, answer)
            assert "white space" in answer["error"]
    assert (await _predict(client, {"user_id": " u ", "features": {}}))[0] == 200


async def test_an_unknown_model_s_404_shows_a_long_name_cut(client: TestClient[Any, Any]) -> None:
    """Found by a new user: a 5,000-character model name came back whole in the 404."""
    name = "a" * 5000
    response = await client.post(
        f"/v1/models/{name}:predict", json={"user_id": "u", "features": {}}
    )
    assert response.status == 404
    error = (await response.json())["error"]
    assert len(error) < 300, len(error)
    assert error.startswith("no model 'aaaa")
    assert "(5000 characters)" in error
    short = await client.post("/v1/models/nosuch:predict", json={"user_id": "u", "features": {}})
    assert (await short.json())["error"].startswith("no model 'nosuch'; known: ")


async def test_a_bug_is_a_logged_json_500(
    client: TestClient[Any, Any], app: web.Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(app[SERVING].predictor, "predict", broken)
    response = await client.post("/v1/models/ctr:predict", json=instances(1)[0])
    assert response.status == 500
    assert await response.json() == {"error": "internal error", "field": None}


def test_a_worker_needs_a_signing_key() -> None:
    with pytest.raises(ConfigurationError, match="MODEL_SIGNING_KEY"):
        create_serving_app(Settings(model_signing_key=None))
    with pytest.raises(ValidationError, match="model_signing_key"):
        Settings(model_signing_key=SecretStr(""))  # refused with the settings now


async def test_cap_reached_switches_to_the_fallback_decision_and_alerts(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    model = loaded(1)
    rules = BusinessRules(threshold=0.0, positive_cap_per_window=2, fallback_decision="hold")
    object.__setattr__(model, "spec", replace(model.spec, rules=rules))
    app[SERVING].store.put(model)
    _, body = await _predict(client, {"instances": instances(5)})
    assert [p["decision"] for p in body["predictions"]] == ["show"] * 2 + ["hold"] * 3
    assert [p["capped"] for p in body["predictions"]] == [False] * 2 + [True] * 3
    metrics = await (await client.get("/metrics")).text()
    assert 'streamlearn_serve_cap_reached_total{model="ctr"} 1.0' in metrics
    assert 'streamlearn_serve_capped_decisions_total{model="ctr"} 3.0' in metrics
    assert 'streamlearn_serve_alerts_total{kind="action_limit"} 1.0' in metrics


async def test_a_newest_arm_spends_its_model_s_cap_not_a_cap_of_its_own(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """A `ctr~newest` arm's predictions are ctr's (recorded and trained as ctr): its
    positive decisions count against ctr's cap, or the arms together act twice the cap."""
    rules = BusinessRules(threshold=0.0, positive_cap_per_window=2, fallback_decision="hold")
    for version, promoted in ((1, True), (2, False)):
        model = loaded(version)
        object.__setattr__(model, "spec", replace(model.spec, rules=rules))
        app[SERVING].store.put(model, promoted=promoted)
    app[SERVING].book.put(
        Experiment("gate", "s", (Arm("promoted", "ctr", 1.0), Arm("newest", "ctr~newest", 1.0)))
    )
    _, body = await _predict(client, {"instances": instances(8)})
    predictions = body["predictions"]
    assert {p["model_version"] for p in predictions} == {1, 2}  # both arms answered
    assert [p["decision"] for p in predictions].count("show") == 2
    assert sum(p["capped"] for p in predictions) == 6
    metrics = await (await client.get("/metrics")).text()
    assert 'streamlearn_serve_cap_reached_total{model="ctr"} 1.0' in metrics
    assert 'streamlearn_serve_capped_decisions_total{model="ctr"} 6.0' in metrics
    assert "ctr~newest" not in "".join(
        line for line in metrics.splitlines() if "cap" in line and not line.startswith("#")
    )


async def test_the_newest_version_is_an_arm_s_route_not_an_endpoint(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """`ctr~newest` answered 200 as an endpoint: any caller got versions the promotion gate
    held back, outside any experiment, and its predictions trained `ctr`."""
    app[SERVING].store.put(loaded(3))
    status, body = await _predict(client, instances(1)[0], model="ctr~newest")
    assert status == 404
    assert body["field"] == "name"
    assert "only an experiment arm" in body["error"]


async def test_what_a_client_could_grow_models_and_monitors_with_is_422_naming_it() -> None:
    """Found by sending hostile predictions through the whole loop: 20 requests of ~28,000
    made-up feature names grew ``ctr``'s snapshot past model.state's message limit (the
    learner then crashed at every restart), a 440 KB category overflowed the monitor's
    store record, and a number named ``category=books`` overwrote the one-hot input of the
    category "books" that every user's score reads."""
    settings = Settings(models=["ctr"], serve_max_body_bytes=4 * 1024 * 1024)
    app = create_serving_app(settings, kafka=False)
    app[SERVING].store.put(loaded(1))
    async with TestClient(WorkerTestServer(app)) as client:
        await _grown_inputs_are_refused(client)


async def _grown_inputs_are_refused(client: TestClient[Any, Any]) -> None:
    wide = {f"f{i}": 1.0 for i in range(MAX_FEATURES + 1)}
    cases = [
        ({"features": wide}, "features", f"{MAX_FEATURES + 1} features"),
        ({"features": {"category": "x" * (MAX_TEXT_CHARS + 1)}}, "features.category", "string"),
        ({"features": {}, "context": {"placement": "y" * (MAX_TEXT_CHARS + 1)}},
         "context.placement", "string"),
        ({"features": {"category=books": 9.8}}, "features.category=books", "'='"),
        ({"features": {"": 1.0}}, "features.", "name"),
        ({"features": {"n" * 300: 1.0}}, "features." + "n" * 64, "name"),
        ({"features": {}, "context": {"a=b": "c"}}, "context.a=b", "'='"),
        # Context keys are inputs too (ctx.<key>): found by a new user, 20 requests of
        # 30,000 made-up keys grew both models past model.state's record size, and
        # learning stopped.
        ({"features": {}, "context": {f"k{i}": "v" for i in range(MAX_FEATURES + 1)}},
         "context", f"{MAX_FEATURES + 1} context keys"),
        ({"features": dict(list(wide.items())[:1000]),
          "context": {f"k{i}": "v" for i in range(100)}},
         "context", f"1000 features and 100 context keys, at most {MAX_FEATURES} together"),
    ]  # fmt: skip
    for instance, field, says in cases:
        status, body = await _predict(client, {"user_id": "u", **instance})
        assert (status, body["field"]) == (422, field), body
        assert says in body["error"]
    # 1,024 inputs: 1,023 features and a context key.
    fits: dict[str, Any] = {f"f{i}": 1.0 for i in range(MAX_FEATURES - 2)}
    fits["category"] = "x" * MAX_TEXT_CHARS
    status, body = await _predict(client, {"user_id": "u", "features": fits,
                                           "context": {"ctx": "ok"}})  # fmt: skip
    assert status == 200, body


async def test_the_request_ids_a_worker_makes_cannot_be_guessed_from_one_another(
    client: TestClient[Any, Any],
) -> None:
    """Feedback is joined to a prediction by its request id. Ids were a per-worker prefix
    and a counter, so one answer told anyone the next ones: a probe sent clicks for the
    next 450 users' predictions (the click rate went from 36 % to 44 %) and took ids the
    worker was about to hand out for predictions of its own."""
    ids = []
    for instance in instances(200):
        status, body = await _predict(client, instance)
        assert status == 200
        ids.append(body["request_id"])
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 24 and int(i, 16) >= 0 for i in ids)
    # No shared prefix, no order: each id's bits are new (the count of equal leading hex
    # digits between neighbours is what chance gives, ~1/16 for the first).
    assert len({i[:4] for i in ids}) > 180
    assert sum(a < b for a, b in itertools.pairwise(ids)) < 130


async def test_a_number_the_model_reads_sent_as_a_string_is_422_naming_it(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    """Found by a user's review: ``"price": "12.5"`` (what a form field gives) was served as
    if price were missing (the click specs take its logarithm, of numbers only), and
    ``"is_mobile": "1"`` was learned as a new category, silently. A feature the spec
    declares numeric (``ModelSpec.numeric_features``) refuses a string, naming it; null
    still means missing, and a boolean counts as a number."""
    serving = app[SERVING]
    serving.store.put(loaded(3))
    offered: list[Any] = []
    serving.predictor.telemetry = SimpleNamespace(  # type: ignore[assignment]
        offer_predictions=lambda predictions, *rest: offered.append(predictions)
    )
    one = instances(1)[0]
    for name, text in (("price", "12.5"), ("is_mobile", "1"), ("hour", "noon")):
        body = {**one, "features": {**one["features"], name: text}}
        status, answer = await _predict(client, body)
        assert (status, answer["field"]) == (422, f"features.{name}"), answer
        assert f"ctr reads {name} as a number" in answer["error"]
        assert repr(text) in answer["error"]
    batch = instances(3)
    batch[2]["features"]["price"] = "cheap"
    status, answer = await _predict(client, {"instances": batch})
    assert (status, answer["field"]) == (422, "instances[2].features.price"), answer
    # Refused whole: nothing was served, so nothing was counted or offered to telemetry.
    assert "streamlearn_serve_predictions_total{" not in await (await client.get("/metrics")).text()
    assert offered == []
    fine = {**one, "features": {**one["features"], "price": None, "is_mobile": True}}
    assert (await _predict(client, fine))[0] == 200
    assert len(offered) == 1
    # Strings in features the spec does not declare numeric are categories, as before.
    assert (await _predict(client, {**one, "features": {"colour": "12"}}))[0] == 200
    # Said where a client looks for what a model takes.
    info = await (await client.get("/v1/models/ctr")).json()
    assert info["numeric_features"] == ["hour", "is_mobile", "price", "recency_s"]


async def test_an_experiment_arm_of_another_spec_refuses_what_that_spec_reads_as_numbers(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    from streamlearn.models import SPECS

    serving = app[SERVING]
    serving.predictor.specs = {
        **SPECS, "wide": replace(SPECS["ctr"], name="wide", numeric_features=("age",)),
    }  # fmt: skip
    serving.store.put(loaded(2))
    serving.book.put(Experiment("e", "s", (Arm("a", "ctr", 1.0), Arm("b", "wide", 1.0))))
    one = instances(1)[0]
    status, answer = await _predict(client, {**one, "features": {"age": "40"}})
    assert (status, answer["field"]) == (422, "features.age"), answer
    assert "wide reads age as a number" in answer["error"]
    # Listed where a client looks, with the arms' models' features; and back to the
    # endpoint's own once the experiment ends.
    info = await (await client.get("/v1/models/ctr")).json()
    assert info["numeric_features"] == ["age", "hour", "is_mobile", "price", "recency_s"]
    serving.book.remove("e")
    assert (await _predict(client, {**one, "features": {"age": "40"}}))[0] == 200
    info = await (await client.get("/v1/models/ctr")).json()
    assert info["numeric_features"] == ["hour", "is_mobile", "price", "recency_s"]


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
     "multipart/form-data; boundary=x", "application/octet-stream", "application/jsonp"],
)  # fmt: skip
async def test_a_prediction_is_json_by_its_content_type(
    client: TestClient[Any, Any], content_type: str | None
) -> None:
    """Found by a new user: curl's default form type was read as JSON. A browser posts the
    first four across origins without asking the worker (no preflight): any page could
    spend the rules' caps and write telemetry through its visitors' browsers."""
    body = orjson.dumps(instances(1)[0])
    headers = {} if content_type is None else {"Content-Type": content_type}
    # aiohttp's client would add application/octet-stream to bytes sent without a type.
    response = await client.post(
        "/v1/models/ctr:predict", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert response.status == 415
    answer = await response.json()
    assert answer["field"] == "Content-Type"
    assert answer["error"].startswith(
        f"Content-Type {content_type or '(none)'}: send application/json"
    )
    for accepted in ("application/json", "application/json; charset=utf-8", "Application/JSON",
                     "application/vnd.example+json"):  # fmt: skip
        response = await client.post(
            "/v1/models/ctr:predict", data=body, headers={"Content-Type": accepted}
        )
        assert response.status == 200, (accepted, await response.text())
