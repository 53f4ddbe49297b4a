"""From served features to a River input (:func:`model_input`), without importing River.

What :mod:`streamlearn.models.features` documents as the serving and training input: keys
sorted, booleans as 0.0/1.0, finite numbers as floats, strings kept, ``None``, NaN and
infinities dropped, the request context folded in as ``ctx.<key>``. It lives here, apart
from the River components, so that a process that only prepares inputs (the learner
agent's decoding process, :func:`streamlearn.models.prepared.prepared_example`) does not
load River, numpy and scipy (about 85 MB).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

CONTEXT_PREFIX = "ctx."
NUMBER_LIMIT = 2.0**63
"""Feature numbers (and labels) models are given are within ±2^63, what a 64-bit integer
holds. Beyond it the models' arithmetic breaks (measured: a cyclic transform of ``hour``
1e308 raises, a Gaussian's statistics of ``price`` 1e300 overflow for good), and no
measurement a feature carries comes near it. Prediction workers refuse such a number (a
422 naming the feature); learners refuse an example holding one (``events.rejected``)."""
NUMBER_LIMIT_TEXT = "±2^63 (what a 64-bit integer holds)"

FeatureValue = None | bool | int | float | str
ModelInput = dict[str, float | str]


def with_context(
    features: Mapping[str, FeatureValue], context: Mapping[str, str]
) -> dict[str, FeatureValue]:
    """The features with the context folded in as ``ctx.<key>`` (context wins on a clash)."""
    merged: dict[str, FeatureValue] = dict(features)
    for key, value in context.items():
        merged[CONTEXT_PREFIX + key] = value
    return merged


def model_input(
    features: Mapping[str, FeatureValue], context: Mapping[str, str] | None = None
) -> ModelInput:
    """The River input for served ``features`` and ``context`` (neither is modified)."""
    items: Mapping[str, FeatureValue] = with_context(features, context) if context else features
    x: ModelInput = {}
    for key in sorted(items):
        value = items[key]
        if isinstance(value, str):
            x[key] = value
        elif isinstance(value, bool):
            x[key] = 1.0 if value else 0.0
        elif isinstance(value, int | float):
            number = float(value)
            if math.isfinite(number):
                x[key] = number
    return x


def unsorted_model_input(
    features: Mapping[str, FeatureValue], context: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    """:func:`model_input`'s items in no particular order (for a caller that adds to them
    and sorts once after: the workers' scorers), or None when a value is of a subclass of
    a JSON type, whose conversion :func:`model_input` itself must decide."""
    items: Mapping[str, Any] = features  # the values' classes are checked one by one
    x: dict[str, Any] = {}
    for key, value in items.items():
        cls = value.__class__
        if cls is str:
            x[key] = value
        elif cls is float:
            if value - value == 0.0:  # not NaN or ±inf: model_input drops those
                x[key] = value
        elif cls is bool:
            x[key] = 1.0 if value else 0.0
        elif cls is int:
            number = float(value)
            if number - number == 0.0:
                x[key] = number
        elif value is not None:
            return None
    if context:
        # A worker's context is strings (validated): folded in after the features, without
        # the merged copy with_context makes (a sixth of this function's time). Any other
        # value: the merged items, converted as the features are.
        for key, text in context.items():
            if text.__class__ is not str:
                return unsorted_model_input(with_context(features, context))
            x[CONTEXT_PREFIX + key] = text
    return x
