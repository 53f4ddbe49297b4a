"""Request validation in-process: what the cache of names that passed may hold."""

from __future__ import annotations

import orjson

from streamlearn.serving import validation
from streamlearn.serving.exceptions import InvalidRequest
from streamlearn.serving.validation import parse_predict


def _predict(features: dict[str, float]) -> None:
    parse_predict(orjson.dumps({"user_id": "u", "features": features}), 1)


def test_names_a_client_made_up_do_not_keep_real_ones_out_of_the_cache() -> None:
    """The cache of names that passed took the first 4,096 and no more: a client's
    made-up names filled it for good, and every later real name was checked again on
    every request. Once full it starts anew."""
    limit = validation._KNOWN_NAMES_LIMIT
    for start in range(0, limit * 3, 512):
        _predict({f"made-up-{n}": 1.0 for n in range(start, start + 512)})
    assert len(validation._KNOWN_NAMES) <= limit
    _predict({"price": 1.0})
    assert "price" in validation._KNOWN_NAMES


def _refused(body: object, numeric: dict[str, str], max_instances: int = 8) -> tuple[int, str]:
    try:
        parse_predict(orjson.dumps(body), max_instances, numeric)
    except InvalidRequest as exc:
        return exc.status, str(exc.field)
    raise AssertionError("accepted")


def test_a_string_for_a_number_is_refused_after_every_other_problem_of_the_body() -> None:
    """Strings for numeric features are found while parsing and refused once the body is
    parsed, as when a separate check ran after it: the first instance first, then the
    models' order of features; any other problem of the body is said first."""
    numeric = {"hour": "ctr", "price": "ctr"}
    one = {"user_id": "u", "features": {"price": "x", "hour": "y"}}
    assert _refused(one, numeric) == (422, "features.hour")
    assert _refused({**one, "context": 3}, numeric) == (422, "context")
    long = {"user_id": "u", "features": {"hour": "y" * 3000}}
    assert _refused(long, numeric) == (422, "features.hour")
    huge = {"user_id": "u", "features": {"hour": "y", **{f"f{i}": "z" * 2000 for i in range(400)}}}
    assert _refused(huge, numeric, 1) == (413, "body")
    batch = {"instances": [one, {"features": {}}]}
    assert _refused(batch, numeric) == (422, "instances[1].user_id")
    twice = {"instances": [{**one, "request_id": "a"}, {**one, "request_id": "a"}]}
    assert _refused(twice, numeric) == (422, "instances[1].request_id")
    late = {"instances": [{"user_id": "u", "features": {}}, one]}
    assert _refused(late, numeric) == (422, "instances[1].features.hour")
    parse_predict(orjson.dumps(late), 8)  # without numeric features: accepted
