"""Request validation in-process: what the cache of names that passed may hold."""

from __future__ import annotations

import orjson

from streamlearn.serving import validation
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
