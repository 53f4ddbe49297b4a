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

CONTEXT_PREFIX = "ctx."

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
