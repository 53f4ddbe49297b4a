"""The worker's scorers answer exactly what ``spec.predict(model, model_input(...))`` answers."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import pytest
from river import linear_model, optim

from streamlearn.models import SPECS, ModelSpec, model_input
from streamlearn.models.checks import training_stream
from streamlearn.models.compiled_tree import leaf_score
from streamlearn.models.features import DerivedFeatures, FeatureEncoder
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.synthetic import ClickWorld
from streamlearn.serving.scoring import scorer_for

ODD: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({}, {}),
    ({"price": float("nan"), "hour": 2**70, "is_mobile": True, "category": "unseen"}, {}),
    ({"price": float("-inf"), "recency_s": None, "loyalty": "gold"}, {"placement": "x"}),
    (
        {"price": 3, "hour": -7, "is_mobile": False, "ctx.placement": "shadowed"},
        {"placement": "top"},
    ),
    ({"price": 1e308, "new_number": 4.5, "new_flag": True}, {"device": "tv"}),
]


def _trained(spec: ModelSpec, n: int) -> Any:
    model = spec.new_model()
    for x, label in training_stream(spec, n):
        spec.learn(model, x, label)
    return model


def _plain_linear() -> ModelSpec:
    """The ``FeatureEncoder | LogisticRegression`` pipeline without anything before it."""
    return replace(
        SPECS["ctr"],
        name="plain_linear",
        estimator="FeatureEncoder | LogisticRegression(SGD(0.01))",
        build=lambda seed: FeatureEncoder() | linear_model.LogisticRegression(optim.SGD(0.01)),
    )


def _derived_then_scaled() -> ModelSpec:
    """``ctr`` with a second step of derived features (dropping one) before the encoder: the
    general path (each step's own transform_one), not the one-pass plan."""
    spec = SPECS["ctr"]

    def build(seed: int) -> Any:
        derived, _, regression = list(spec.new_model().steps.values())
        return derived | DerivedFeatures(drop=("hour.cos",)) | FeatureEncoder() | regression

    return replace(spec, name="derived_scaled", build=build)


FAST = {"ctr": "planned", "plain_linear": "planned", "derived_scaled": "transformed"}


@pytest.mark.parametrize(
    "spec", [SPECS["ctr"], _plain_linear(), _derived_then_scaled()], ids=list(FAST)
)
@pytest.mark.parametrize("examples", [0, 20, 3000])
def test_the_fast_scorer_is_bit_identical_to_the_spec(spec: ModelSpec, examples: int) -> None:
    model = _trained(spec, examples)
    score = scorer_for(spec, model)
    assert score.__name__ == FAST[spec.name]  # not the generic fallback
    requests = [(r.features, r.context) for r in ClickWorld(5).requests(2000)]
    for features, context in requests + ODD:
        expected = spec.predict(model, model_input(features, context))
        assert score(features, context) == expected, (features, context)


@pytest.mark.parametrize(
    "spec", [SPECS["ctr"], _plain_linear(), SPECS["ctr_tree"]], ids=["ctr", "plain", "tree"]
)
def test_values_of_other_classes_are_scored_by_the_spec(spec: ModelSpec) -> None:
    class Label(str):
        pass

    model = _trained(spec, 500)
    score = scorer_for(spec, model)
    features: dict[str, Any] = {"category": Label("books"), "price": 3.0}
    assert score(features, {}) == spec.predict(model, model_input(features, {}))


def test_other_models_get_the_specs_own_call() -> None:
    spec = SPECS["conversion_value"]
    model = _trained(spec, 500)
    score = scorer_for(spec, model)
    assert score.__name__ == "score"
    for request in ClickWorld(3).requests(200):
        assert score(request.features, request.context) == spec.predict(
            model, model_input(request.features, request.context)
        )


def test_a_pipeline_that_does_not_compute_what_it_seems_falls_back() -> None:
    class Shifted(linear_model.LogisticRegression):
        def predict_proba_one(self, x: Any, **kwargs: Any) -> Any:
            p = super().predict_proba_one(x)[True] / 2  # type: ignore[no-untyped-call]
            return {False: 1 - p, True: p}

    spec = replace(_plain_linear(), build=lambda seed: FeatureEncoder() | Shifted())
    model = _trained(spec, 200)
    score = scorer_for(spec, model)
    assert score.__name__ == "score"  # a subclass is not taken for the regression
    features: dict[str, Any] = {"price": 5.0, "category": "books"}
    assert score(features, {}) == spec.predict(model, model_input(features, {}))


# Inputs the one-pass plan of ``ctr`` hands to the spec's call, or must convert as
# model_input and DerivedFeatures do: a raw feature named like a derived one, keys holding
# ``=`` (the number ``a=b`` and the category ``a`` = ``b`` are one encoder key), a known
# feature present but dropped by its transform, numbers of every JSON class.
PLAN_EDGES: list[tuple[dict[str, Any], dict[str, str]]] = [
    ({"hour": 3, "hour.sin": 0.5, "price": 2.0}, {}),
    ({"recency_s.known": "no", "recency_s": 4.0}, {}),
    ({"a=b": 1.5, "a": "b", "price": 2.0}, {"device": "tv"}),
    ({"category=books": "x", "category": "books=x"}, {}),
    ({"price": 2.0}, {"pla=cement": "top"}),
    ({"recency_s": -5.0, "price": -1.0, "hour": "noon"}, {}),
    ({"recency_s": "recent", "price": 0.0, "hour": True}, {}),
    ({"recency_s": float("nan"), "price": 2**80, "hour": -(2**70)}, {}),
    ({"recency_s": 0, "price": 1, "is_mobile": 1, "loyalty": ""}, {"device": ""}),
    ({"ctx.device": 3.5, "ctx.placement": "feature"}, {"device": "mobile"}),
]


@pytest.mark.parametrize("examples", [0, 3000])
def test_the_plan_answers_its_edge_cases_as_the_spec(examples: int) -> None:
    spec = SPECS["ctr"]
    model = _trained(spec, examples)
    score = scorer_for(spec, model)
    assert score.__name__ == "planned"
    for features, context in PLAN_EDGES + PLAN_EDGES:  # twice: the second from its caches
        expected = spec.predict(model, model_input(features, context))
        assert score(features, context) == expected, (features, context)


@pytest.mark.parametrize(
    "derived",
    [
        DerivedFeatures(log=("price",), drop=("price",)),  # which comes first decides
        DerivedFeatures(cyclic=(("hour", 24.0),), log=("hour.sin",)),  # a derived input
        DerivedFeatures(known=("price",), log=("price.known",)),
        DerivedFeatures(known=("ctx.device",)),
        DerivedFeatures(log=("a=b",)),
    ],
    ids=["twice", "derived-input", "flag-input", "context", "equals"],
)
def test_transforms_the_plan_cannot_order_take_the_steps_own_path(
    derived: DerivedFeatures,
) -> None:
    spec = SPECS["ctr"]

    def build(seed: int) -> Any:
        *_, regression = list(spec.new_model().steps.values())
        return derived | FeatureEncoder() | regression

    overlapping = replace(spec, name="overlapping", build=build)
    model = _trained(overlapping, 500)
    score = scorer_for(overlapping, model)
    assert score.__name__ == "transformed"
    for features, context in [(r.features, r.context) for r in ClickWorld(6).requests(300)]:
        expected = overlapping.predict(model, model_input(features, context))
        assert score(features, context) == expected


@functools.cache
def _served_tree(examples: int, nb_threshold: int = 0) -> Any:
    """ctr_tree trained on ``examples``, as a worker has it: loaded from its payload."""
    spec = SPECS["ctr_tree"]
    model = spec.new_model()
    if nb_threshold:
        _tree(model).nb_threshold = nb_threshold  # the copies it averages are of it
    for x, label in training_stream(spec, examples):
        spec.learn(model, x, label)
    return loads(dumps(model))


def _tree(model: Any) -> Any:
    """The live tree of ctr_tree's average (the one that learns)."""
    return model.steps["HistogramCalibrated"].classifier.classifier


def _leaves(model: Any) -> list[Any]:
    root = _tree(model)._root
    return [root] if not hasattr(root, "iter_leaves") else list(root.iter_leaves())


# 0: no root; 60: a root leaf under the grace period; 5,000 and 30,000: grown trees whose
# young leaves predict with their parent's statistics (InheritingNaiveBayesLeaf).
@pytest.mark.parametrize("examples", [0, 60, 1200, 5000, 30000])
def test_the_tree_scorer_is_bit_identical_to_the_spec(examples: int) -> None:
    spec, model = SPECS["ctr_tree"], _served_tree(examples)
    score = scorer_for(spec, model)
    assert score.__name__ == "tree_score"
    requests = [(r.features, r.context) for r in ClickWorld(5).requests(3000)]
    for features, context in requests + ODD:
        expected = spec.predict(model, model_input(features, context))
        assert score(features, context) == expected, (features, context)


def test_grown_tree_leaves_predict_with_their_compiled_naive_bayes() -> None:
    model = _served_tree(5000)
    tree = _tree(model)
    leaves = _leaves(model)
    inheriting = [leaf for leaf in leaves if leaf.inherited is not None]
    # Both sources of statistics are there to compile: a young leaf's parent's (5 of the
    # 7 leaves of this tree) and a grown leaf's own.
    assert 0 < len(inheriting) < len(leaves)
    assert {leaf_score(leaf, tree).__name__ for leaf in leaves} == {"naive_bayes"}


def test_leaves_under_the_naive_bayes_threshold_answer_with_their_own_prediction() -> None:
    spec, model = SPECS["ctr_tree"], _served_tree(5000, nb_threshold=10**9)
    tree = _tree(model)
    assert {leaf_score(leaf, tree).__name__ for leaf in _leaves(model)} == {"own"}
    score = scorer_for(spec, model)
    for request in ClickWorld(4).requests(500):
        assert score(request.features, request.context) == spec.predict(
            model, model_input(request.features, request.context)
        )


def test_a_leaf_with_a_splitter_it_does_not_know_is_asked_itself() -> None:
    from river.tree.splitter import EBSTSplitter

    model = loads(dumps(_served_tree(5000)))  # a copy: the cached tree stays as it was
    tree = _tree(model)
    leaf = _leaves(model)[0]
    splitters = leaf.inherited if getattr(leaf, "inherited", None) else leaf.splitters
    name = next(iter(splitters))
    splitters[name] = EBSTSplitter()  # River's regression splitter: not compiled
    assert leaf_score(leaf, tree).__name__ == "own"
