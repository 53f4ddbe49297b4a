"""Put on the ``PYTHONPATH`` of a learner process by test_learner_model_errors.py: it adds
``price_only`` to the shipped specs there, as a user adds a spec of their own to ``SPECS``.
``price_only`` is River's ``compose.Select("price")`` before a logistic regression: it
raises ``KeyError: 'price'`` on an example without a price (docs/learning.md warns of it).
Its examples share ``training.examples``' partition with ``ctr``'s."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType
from typing import Any

from streamlearn.models import specs


def _price_only(seed: int) -> Any:
    from river import compose, linear_model, optim, preprocessing

    return (
        compose.Select("price")
        | preprocessing.StandardScaler()
        | linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
    )


PRICE_ONLY = replace(
    specs.SPECS["ctr"],
    name="price_only",
    estimator="Select(price) | StandardScaler | LogisticRegression(SGD(0.05))",
    build=_price_only,
)
specs.SPECS = MappingProxyType({**specs.SPECS, PRICE_ONLY.name: PRICE_ONLY})
