"""Scoring served features with a loaded model: the spec's own call, or, for a standardised
logistic regression (``FeatureEncoder | LogisticRegression``, the ``ctr`` spec), the same
arithmetic without River's pipeline machinery.

:func:`scorer_for` returns a function of (features, context) giving exactly
``spec.predict(model, model_input(features, context))``. The fast path for the linear
pipeline builds, in one pass over the sorted keys, the very dict ``FeatureEncoder`` would
hand the regression (same keys, same order, same values: each standardised number is
``(value - mean) / sqrt(m2 / n)`` with ``sqrt(m2 / n)`` computed once per model, the same
double), then calls the regression's own weight vector (``VectorDict.dot``), adds its
intercept and applies River's sigmoid. So the score is bit-identical by construction, not
merely close; a canary check at creation falls back to the spec's call if a River upgrade
ever changes what the pipeline computes. It costs about half of the pipeline call per
instance (River's ``Pipeline`` walks its steps, builds an intermediate dict per step and a
``{False: 1 - p, True: p}`` per prediction).

The ``ctr`` spec puts :class:`~streamlearn.models.features.DerivedFeatures` before the
encoder: its scorer builds model_input's values unsorted, derives the features in place
(``DerivedFeatures.derive``, what ``transform_one`` runs) and sorts once, where the
pipeline sorts twice and copies the dict between (4.2 µs per instance against 5.5 for
each step's own ``transform_one`` and 6.5 for the pipeline call, on 2,000 simulated
requests). Any other steps before the encoder run their own ``transform_one``.

Scores of a batch are computed instance by instance: a numpy matrix product would sum in
another order (and round differently) and, for a few sparse rows, costs more than it saves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from river import base, compose, linear_model, optim

from streamlearn.models import ModelSpec, model_input
from streamlearn.models.features import (
    CONTEXT_PREFIX,
    DerivedFeatures,
    FeatureEncoder,
    FeatureValue,
)
from streamlearn.models.inputs import unsorted_model_input
from streamlearn.serving.tree_scoring import tree_scorer

Scorer = Callable[[Mapping[str, FeatureValue], Mapping[str, str]], float]
"""(features, context) → the raw score."""


def scorer_for(spec: ModelSpec, model: Any) -> Scorer:
    """The fastest scorer of ``model`` that answers what ``spec.predict`` answers."""
    fast = _linear_scorer(spec, model)
    if fast is not None and _agrees(fast, spec, model):
        return fast
    fast = tree_scorer(spec, model)
    if fast is not None and _agrees_on(fast, spec, model, TREE_CANARIES):
        return fast
    return _generic(spec, model)


def _generic(spec: ModelSpec, model: Any) -> Scorer:
    predict = spec.predict

    def score(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
        return predict(model, model_input(features, context))

    return score


def _linear_scorer(spec: ModelSpec, model: Any) -> Scorer | None:
    """The fused scorer of ``[transformers... |] FeatureEncoder | LogisticRegression`` (log
    loss), else None."""
    if spec.task != "binary" or type(model) is not compose.Pipeline:
        return None
    steps = list(model.steps.values())
    if len(steps) < 2:
        return None
    *before, encoder, regression = steps
    if type(encoder) is not FeatureEncoder:
        return None
    if type(regression) is not linear_model.LogisticRegression:
        return None
    if type(regression.loss) is not optim.losses.Log:
        return None
    if any(
        not isinstance(step, base.Transformer) or isinstance(step, compose.TransformerUnion)
        for step in before
    ):
        return None
    # Per numeric feature, (mean, standard deviation) when its variance is positive; a
    # feature not there (unseen, or constant) is standardised to 0.0 as FeatureEncoder does.
    spread: dict[Any, tuple[float, float]] = {}
    for key, n in encoder.counts.items():
        variance = encoder.m2[key] / n if n else 0.0
        if variance > 0:
            spread[key] = (encoder.means[key], math.sqrt(variance))
    dot = regression._weights.dot
    intercept = regression.intercept
    generic = _generic(spec, model)

    def encoded_score(x: Mapping[Any, Any], keys: Iterable[Any]) -> float:
        # FeatureEncoder.transform_one of x's items in the order of ``keys``, with each
        # standard deviation computed once; then the regression.
        z: dict[Any, float] = {}
        for key in keys:
            value = x[key]
            if value.__class__ is float:
                stats = spread.get(key)
                z[key] = 0.0 if stats is None else (value - stats[0]) / stats[1]
            else:
                z[f"{key}={value}"] = 1.0
        return _sigmoid(dot(z) + intercept)

    if len(before) == 1 and type(before[0]) is DerivedFeatures:
        derive = before[0].derive

        def derived(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
            # DerivedFeatures.transform_one and FeatureEncoder.transform_one in one pass:
            # the derived features are added to model_input's fresh dict in place, and the
            # encoder's dict is filled in the order transform_one would hand it over.
            if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
                return generic(features, context)
            # model_input's values, unsorted (the one sort is below, after the transforms).
            x: dict[Any, Any] | None = unsorted_model_input(features, context)
            if x is None:  # a subclass of a JSON type: model_input decides
                return generic(features, context)
            derive(x)
            return encoded_score(x, sorted(x))

        return derived
    if before:
        transforms = tuple(step.transform_one for step in before)

        def transformed(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
            if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
                return generic(features, context)
            x: dict[Any, Any] = model_input(features, context)
            for transform in transforms:
                x = transform(x)
            return encoded_score(x, x)

        return transformed

    def fused(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
        # model_input and FeatureEncoder.transform_one in one pass over the sorted keys.
        if compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
            return generic(features, context)
        items: Mapping[str, Any] = features
        if context:
            items = dict(features)
            for key, text in context.items():
                items[CONTEXT_PREFIX + key] = text
        z: dict[Any, float] = {}
        for key in sorted(items):
            value = items[key]
            cls = value.__class__
            if cls is str:
                z[f"{key}={value}"] = 1.0
                continue
            if cls is float:
                if value - value != 0.0:  # nan or ±inf: model_input drops it
                    continue
            elif cls is bool:
                value = 1.0 if value else 0.0
            elif cls is int:
                value = float(value)
                if value - value != 0.0:
                    continue
            elif value is None:
                continue
            else:  # a subclass of a JSON type: let model_input decide what it is
                return generic(features, context)
            stats = spread.get(key)
            z[key] = 0.0 if stats is None else (value - stats[0]) / stats[1]
        return _sigmoid(dot(z) + intercept)

    return fused


def _sigmoid(raw: float) -> float:
    """``river.utils.math.sigmoid`` (what LogisticRegression's log loss applies), as a
    float."""
    if raw < -30:
        return 0.0
    if raw > 30:
        return 1.0
    return 1 / (1 + math.exp(-raw))


CANARIES: tuple[tuple[dict[str, FeatureValue], dict[str, str]], ...] = (
    ({}, {}),
    (
        {"price": 12.5, "hour": 7, "is_mobile": True, "category": "books", "recency_s": 30.0},
        {"placement": "top", "device": "mobile"},
    ),
    (
        {"price": -3.0, "hour": 23.5, "is_mobile": False, "recency_s": None, "big": 2**70},
        {"placement": "side"},
    ),
    ({"price": 0.0, "loyalty": "gold", "odd": float("inf")}, {}),
)
"""Requests a fast scorer must answer as the spec does (with the model's own features)."""


Canary = tuple[dict[str, FeatureValue], dict[str, str]]


def _shaped(
    price: float, hour: int, category: str, recency_s: float | None, loyalty: str, placement: str
) -> Canary:
    device = "mobile" if hour < 12 else "desktop"
    features: dict[str, FeatureValue] = {
        "price": price, "hour": hour, "is_mobile": device == "mobile", "category": category,
        "recency_s": recency_s, "loyalty": loyalty,
    }  # fmt: skip
    return features, {"placement": placement, "device": device}


TREE_CANARIES: tuple[Canary, ...] = (
    *CANARIES,
    _shaped(4.99, 3, "books", None, "none", "top"),
    _shaped(19.5, 9, "games", 12.0, "gold", "side"),
    _shaped(120.0, 14, "garden", 900.0, "silver", "bottom"),
    _shaped(999.0, 20, "toys", 86400.0, "none", "top"),
    _shaped(0.5, 23, "music", 3.5, "gold", "feed"),
)
"""Requests a fast tree scorer must answer as the spec does: the canaries, and inputs
shaped like the simulated world's that reach other leaves."""


def _agrees_on(
    fast: Scorer,
    spec: ModelSpec,
    model: Any,
    canaries: tuple[Canary, ...],
) -> bool:
    """Whether ``fast`` answers what ``spec.predict`` answers on every one of ``canaries``."""
    try:
        return all(
            fast(features, context) == spec.predict(model, model_input(features, context))
            for features, context in canaries
        )
    except Exception:
        return False


def _agrees(fast: Scorer, spec: ModelSpec, model: Any) -> bool:
    """Whether ``fast`` answers what ``spec.predict`` answers on canary inputs, the model's
    own feature names (numbers and known categories) among them."""
    *_, encoder, regression = list(model.steps.values())
    numbers = {str(key): float(encoder.means.get(key, 0.0)) + 1.5 for key in encoder.counts}
    categories: dict[str, FeatureValue] = {}
    for name in regression._weights.to_dict():
        key, equals, value = str(name).partition("=")
        if equals and key not in numbers:
            categories.setdefault(key, value)
    own: dict[str, FeatureValue] = {**numbers, **categories}
    canaries = (*CANARIES, (own, {}), ({**CANARIES[1][0], **own}, {"placement": "top"}))
    return _agrees_on(fast, spec, model, canaries)
