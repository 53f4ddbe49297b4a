"""Scoring ``[DerivedFeatures |] FeatureEncoder | LogisticRegression`` (the ``ctr`` spec) in
one pass over a request's items, bit-identical to ``spec.predict``.

River's pipeline builds four dicts per prediction: model_input's, the derived features',
the encoder's (one-hot names formatted per request) and the probabilities. The regression
then adds ``weight * value`` over the encoder's dict in its order, which is the order of the
sorted input keys. A served model never learns, so everything per key is fixed per model
version: a category's term is its weight (``weight * 1.0``), a number's is
``weight * ((value - mean) / std)`` with the mean, standard deviation and weight looked up
together. :func:`planned_scorer` compiles the derived features' transforms into one lookup
per raw key, keeps each key's term in a dict (a later value of the same key replaces an
earlier one, as in the pipeline's dicts), and adds the terms in sorted key order: the same
doubles added in the same order, so the same sum to the last bit.

The cases in which a term's key would not be unique, or the pipeline's order of transforms
would matter, are refused when the plan is built (``None``: the caller uses the steps' own
transforms) or, per request, handed to ``spec.predict``: a key holding ``=`` (a number
``a=b`` and the category ``a`` = ``b`` are one encoder key), a raw feature named like a
derived one (``hour.sin``), a value of a subclass of a JSON type.

It is only for models that no longer learn (what workers and the learning lab serve): the
plan holds the weights and statistics of the version it was built from.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from river.compose import Pipeline

from streamlearn.models.features import CONTEXT_PREFIX, DerivedFeatures, FeatureValue

Scorer = Callable[[Mapping[str, FeatureValue], Mapping[str, str]], float]

CACHE_LIMIT = 65536
"""Categories whose term is kept per model version (a request's unseen categories beyond
it are looked up each time)."""

_KEEP, _DROP, _LOG, _LOG1P, _CYCLIC, _REFUSE = range(6)
_TAU = 2 * math.pi  # DerivedFeatures computes ``2 * math.pi * value / period``: the same
_log, _log1p, _sin, _cos = math.log, math.log1p, math.sin, math.cos


def planned_scorer(
    derived: DerivedFeatures,
    spread: Mapping[Any, tuple[float, float]],
    weights: Mapping[Any, float],
    intercept: float,
    sigmoid: Callable[[float], float],
    fallback: Scorer,
) -> Scorer | None:
    """The one-pass scorer of ``derived | FeatureEncoder | LogisticRegression`` (an empty
    ``DerivedFeatures()`` for a pipeline without one), given the
    encoder's ``spread`` (per number whose variance is positive, its mean and standard
    deviation), the regression's ``weights`` and ``intercept``; None when the transforms
    overlap (a name transformed twice, or a derived name fed to a transform), so that only
    the pipeline's own order can say what they compute. ``fallback`` answers the requests
    the plan refuses."""
    inputs = [
        *derived.log,
        *(name for name, _ in derived.log1p),
        *(name for name, _ in derived.cyclic),
        *derived.drop,
    ]
    flags = [f"{name}.known" for name in derived.known]
    outputs = [*flags, *(f"{name}.{f}" for name, _ in derived.cyclic for f in ("sin", "cos"))]
    names = [*inputs, *outputs, *derived.known]
    if (
        len(set(inputs)) < len(inputs)
        or len(set(outputs)) < len(outputs)
        or set(inputs) & set(outputs)
        or set(derived.known) & set(outputs)
        or any("=" in name or name.startswith(CONTEXT_PREFIX) for name in names)
        or any("=" in str(key) for key in spread)
    ):
        return None
    # Per raw key with something to do: (what, the bit of its known flag, a parameter,
    # the cyclic outputs' keys).
    actions: dict[str, tuple[int, int, float, str, str]] = {}
    bits = {name: 1 << index for index, name in enumerate(derived.known)}
    for name in derived.known:
        actions[name] = (_KEEP, bits[name], 0.0, "", "")
    for name in derived.drop:
        actions[name] = (_DROP, bits.get(name, 0), 0.0, "", "")
    for name in derived.log:
        actions[name] = (_LOG, bits.get(name, 0), 0.0, "", "")
    for name, scale in derived.log1p:
        actions[name] = (_LOG1P, bits.get(name, 0), scale, "", "")
    for name, period in derived.cyclic:
        actions[name] = (_CYCLIC, bits.get(name, 0), period, f"{name}.sin", f"{name}.cos")
    for name in outputs:
        actions[name] = (_REFUSE, 0, 0.0, "", "")
    weight = weights.get
    # A number's (mean, standard deviation, weight); one without positive variance is
    # standardised to 0.0, so its term is ``weight * 0.0``.
    numbers = {key: (mean, std, weight(key, 0.0)) for key, (mean, std) in spread.items()}
    # Each flag's term when its feature is there (``yes``) and when not.
    flag_terms = tuple(
        (bits[name], flag, weight(f"{flag}=yes", 0.0) * 1.0, weight(f"{flag}=no", 0.0) * 1.0)
        for name, flag in zip(derived.known, flags, strict=True)
    )
    categories: dict[tuple[str, str], float] = {}

    def number_term(key: str, value: float) -> float | None:
        stats = numbers.get(key)
        if stats is None:
            return None if "=" in key else weight(key, 0.0) * 0.0
        return stats[2] * ((value - stats[0]) / stats[1])

    def category_term(key: str, value: str) -> float | None:
        term = categories.get((key, value))
        if term is None:
            if "=" in key:
                return None
            term = weight(f"{key}={value}", 0.0) * 1.0
            if len(categories) < CACHE_LIMIT:
                categories[key, value] = term
        return term

    def planned(features: Mapping[str, FeatureValue], context: Mapping[str, str]) -> float:
        if Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:  # the encoder would learn first
            return fallback(features, context)
        terms: dict[str, float] = {}
        seen = 0  # the bits of the known flags' features that are there
        term: float | None
        items: Mapping[str, Any] = features  # the values' classes are checked one by one
        for key, value in items.items():
            # model_input's conversions: None, NaN and ±inf are absent; booleans and
            # integers are numbers.
            cls = value.__class__
            if cls is float:
                if value - value != 0.0:
                    continue
            elif cls is str:
                pass
            elif cls is bool:
                value = 1.0 if value else 0.0
            elif cls is int:
                value = float(value)
                if value - value != 0.0:
                    continue
            elif value is None:
                continue
            else:  # a subclass of a JSON type: model_input decides what it is
                return fallback(features, context)
            action = actions.get(key)
            if action is not None:
                what, bit, parameter, sin_key, cos_key = action
                seen |= bit
                if what == _KEEP:
                    pass
                elif what == _REFUSE:
                    return fallback(features, context)
                elif what == _DROP or value.__class__ is not float:
                    continue  # dropped, or not a number for a numeric transform
                elif what == _LOG:
                    if not value > 0:
                        continue
                    value = _log(value)
                elif what == _LOG1P:
                    if not value >= 0:
                        continue
                    value = _log1p(value / parameter)
                else:
                    angle = _TAU * value / parameter
                    sin_term = number_term(sin_key, _sin(angle))
                    cos_term = number_term(cos_key, _cos(angle))
                    if sin_term is None or cos_term is None:
                        return fallback(features, context)
                    terms[sin_key] = sin_term
                    terms[cos_key] = cos_term
                    continue
            # number_term and category_term inlined for the common case (a known number, a
            # category seen before): a call per key was a sixth of this function's time.
            if value.__class__ is float:
                stats = numbers.get(key)
                if stats is not None:
                    terms[key] = stats[2] * ((value - stats[0]) / stats[1])
                    continue
                term = number_term(key, value)
            else:
                term = categories.get((key, value))
                if term is None:
                    term = category_term(key, value)
            if term is None:
                return fallback(features, context)
            terms[key] = term
        for key, text in context.items():
            if text.__class__ is not str:
                return fallback(features, context)
            key = CONTEXT_PREFIX + key
            term = categories.get((key, text))
            if term is None:
                term = category_term(key, text)
            if term is None:
                return fallback(features, context)
            terms[key] = term  # after the features: a context key replaces ``ctx.`` ones
        for bit, flag, yes, no in flag_terms:
            terms[flag] = yes if seen & bit else no
        total = 0.0
        for key in sorted(terms):
            total += terms[key]
        return sigmoid(total + intercept)

    return planned
