"""InheritingHoeffdingTreeClassifier: new naive-Bayes leaves predict with their parent's
likelihoods until they have their own."""

from __future__ import annotations

from typing import Any

import pytest
from river import proba, tree

from streamlearn.models.checks import training_stream
from streamlearn.models.features import SeededGaussianSplitter
from streamlearn.models.inheriting_tree import (
    InheritingHoeffdingTreeClassifier,
    InheritingNaiveBayesLeaf,
)
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.specs import get_spec
from tests.tree_inputs import tree_stream

pytestmark = pytest.mark.unit


def _trees(**kwargs: Any) -> tuple[Any, Any]:
    params = {"grace_period": 200, "leaf_prediction": "nb", **kwargs}
    return (
        tree.HoeffdingTreeClassifier(splitter=SeededGaussianSplitter(seed=0), **params),
        InheritingHoeffdingTreeClassifier(splitter=SeededGaussianSplitter(seed=0), **params),
    )


def _leaf(model: Any, x: dict[Any, Any]) -> Any:
    return list(model._root.walk(x))[-1]


def test_a_new_leaf_ranks_with_its_parents_likelihoods_where_rivers_gives_one_score() -> None:
    plain, inheriting = _trees()
    for x, y in tree_stream(8000):
        plain.learn_one(x, y)
        inheriting.learn_one(x, y)
        young = [
            leaf for leaf in inheriting._root.iter_leaves() if leaf.inherited is not None
        ] if inheriting.n_nodes > 1 else []  # fmt: skip
        if young:
            break
    else:
        pytest.fail("the tree never split")
    probe = [x for x, _ in tree_stream(2000, seed=12) if _leaf(inheriting, x) is young[0]]
    assert len(probe) > 10
    rivers = {round(plain.predict_proba_one(x)[True], 12) for x in probe}
    ours = {round(inheriting.predict_proba_one(x)[True], 12) for x in probe}
    assert len(rivers) == 1  # the class counts alone: every input scores the same
    assert len(ours) > len(probe) // 2


def _structure(model: Any) -> list[tuple[Any, ...]]:
    """Every node, depth first: a branch's split, a leaf's class weights."""
    return [
        ("branch", node.repr_split) if hasattr(node, "repr_split") else ("leaf", node.stats)
        for node in model._root.iter_dfs()
    ]


def test_it_grows_the_same_tree_and_grown_leaves_predict_as_rivers() -> None:
    plain, inheriting = _trees()
    for x, y in tree_stream(8000):
        plain.learn_one(x, y)
        inheriting.learn_one(x, y)
    assert inheriting.n_nodes > 3
    assert _structure(inheriting) == _structure(plain)
    grown = 0
    for x, _ in tree_stream(500, seed=13):
        if getattr(_leaf(inheriting, x), "inherited", None) is None:
            grown += 1
            assert inheriting.predict_proba_one(x) == plain.predict_proba_one(x)
    assert grown > 100


def test_a_leaf_stops_inheriting_after_its_own_grace_period() -> None:
    _, inheriting = _trees(grace_period=100)
    for x, y in tree_stream(6000):
        inheriting.learn_one(x, y)
        for leaf in inheriting._root.iter_leaves():
            if isinstance(leaf, InheritingNaiveBayesLeaf):
                assert leaf.until == 100
                if leaf.inherited is not None:
                    assert leaf.total_weight - leaf.inherited_at < 100
    leaves = list(inheriting._root.iter_leaves())
    assert any(isinstance(leaf, InheritingNaiveBayesLeaf) for leaf in leaves)
    # Cloned with another grace period, it inherits for that one (None: follow it).
    assert inheriting.clone({"grace_period": 50}).inherit_until is None
    assert inheriting.clone({"inherit_until": 30}).inherit_until == 30


def _young(model: Any) -> list[InheritingNaiveBayesLeaf]:
    return [
        leaf
        for leaf in model._root.iter_leaves()
        if isinstance(leaf, InheritingNaiveBayesLeaf) and leaf.inherited is not None
    ]


def test_it_round_trips_through_the_safe_unpickler_sharing_what_siblings_share() -> None:
    _, inheriting = _trees()
    for x, y in tree_stream(8000):
        inheriting.learn_one(x, y)
        if len(_young(inheriting)) >= 2:
            break
    young = _young(inheriting)
    assert len(young) >= 2
    assert young[0].inherited is young[1].inherited  # siblings share their parent's statistics
    loaded = loads(dumps(inheriting))
    again = _young(loaded)
    assert len(again) == len(young)
    assert again[0].inherited is again[1].inherited
    assert dumps(loaded) == dumps(inheriting)
    probe = [x for x, _ in tree_stream(500, seed=14)]
    assert [loaded.predict_proba_one(x) for x in probe] == [
        inheriting.predict_proba_one(x) for x in probe
    ]


def test_the_tree_spec_uses_it() -> None:
    model = get_spec("ctr_tree").new_model(0)
    averaged = list(model.steps.values())[-1].classifier
    assert isinstance(averaged.classifier, InheritingHoeffdingTreeClassifier)


def test_a_trained_trees_snapshot_holds_no_random_generator_state() -> None:
    """Each Gaussian of the splitter used to pickle its random generator (625 words, ~4 KB)
    though learning never draws from it: 170 of them were 99 % of a trained ctr_tree's
    payload. The generator is made again from the seed when a sample is asked for."""
    spec = get_spec("ctr_tree")
    model = spec.new_model(0)
    for x, y in training_stream(spec, 12_000):
        spec.learn(model, x, y)
    payload = dumps(model)
    assert b"_rng" not in payload
    assert len(payload) < 7 * 60_000  # the tree and the six copies it is averaged with
    loaded = loads(payload)
    assert dumps(loaded) == payload
    probe = [x for x, _ in training_stream(spec, 200, seed=5)]
    assert [spec.predict(loaded, x) for x in probe] == [spec.predict(model, x) for x in probe]
    leaves = loaded.steps["HistogramCalibrated"].classifier.classifier._root.iter_leaves()
    splitter = next(
        s for leaf in leaves for s in leaf.splitters.values()
        if isinstance(s, SeededGaussianSplitter) and s._att_dist_per_class
    )  # fmt: skip
    gaussian = next(iter(splitter._att_dist_per_class.values()))
    assert isinstance(gaussian.sample(), float)


def test_a_snapshot_written_before_seeded_gaussians_still_loads() -> None:
    # Snapshots on model.state from before hold River's Gaussian and its random.Random.
    splitter = SeededGaussianSplitter(seed=0)
    splitter._att_dist_per_class[True] = proba.Gaussian(seed=0)
    splitter.update(1.5, True, 1.0)
    state = splitter._att_dist_per_class[True]._rng.getstate()
    old = loads(dumps(splitter))._att_dist_per_class[True]
    assert type(old) is proba.Gaussian
    assert old.mu == 1.5
    assert old._rng.getstate() == state


def _young_by_split(model: Any) -> set[tuple[str, Any, frozenset[Any]]]:
    """(the split's kind, its feature, what the leaf inherited) of each young leaf right
    under a split."""
    return {
        (
            "category" if type(parent).__name__.startswith("Nominal") else "number",
            parent.feature,
            frozenset(child.inherited),
        )
        for parent, child in model._root.iter_edges()
        if isinstance(child, InheritingNaiveBayesLeaf) and child.inherited is not None
    }


def test_under_a_split_on_a_category_a_young_leaf_does_not_inherit_that_feature() -> None:
    """Its class counts already hold the category (one branch per value): the parent's
    likelihood of it counted its evidence twice. Under a split on a number every
    likelihood is inherited (each side still spans values); the tree grows as River's.
    By default (and in a tree pickled before the choice existed) every likelihood is."""
    plain, default = _trees()
    leaner = InheritingHoeffdingTreeClassifier(
        grace_period=200, leaf_prediction="nb", splitter=SeededGaussianSplitter(seed=0),
        nominal_split_inherited=False,
    )  # fmt: skip
    older = InheritingHoeffdingTreeClassifier(
        grace_period=200, leaf_prediction="nb", splitter=SeededGaussianSplitter(seed=0)
    )
    del older.__dict__["nominal_split_inherited"]  # as unpickled from before it existed
    trees = {"leaner": leaner, "default": default, "older": older}
    seen: dict[str, set[tuple[str, Any, frozenset[Any]]]] = {name: set() for name in trees}
    shared = 0
    for x, y in tree_stream(20000):
        plain.learn_one(x, y)
        for name, model in trees.items():
            model.learn_one(x, y)
            seen[name] |= _young_by_split(model)
        for branch in leaner._root.iter_branches() if leaner.n_nodes > 1 else ():
            young = [c.inherited for c in branch.children if getattr(c, "inherited", None)]
            assert all(inherited is young[0] for inherited in young)
            shared += len(young) > 1
    features = frozenset(tree_stream(1)[0][0])
    assert {kind for kind, _, _ in seen["leaner"]} == {"category", "number"}
    for kind, feature, inherited in seen["leaner"]:
        assert inherited == (features - {feature} if kind == "category" else features)
    assert shared > 0  # siblings share one dict of what they inherited
    for kind, _, inherited in seen["default"] | seen["older"]:
        assert inherited == features, kind
    assert seen["default"] == seen["older"]
    for model in trees.values():
        assert _structure(model) == _structure(plain)
    assert leaner.clone().nominal_split_inherited is False


def test_with_binary_splits_a_young_leaf_inherits_every_likelihood() -> None:
    """A binary split on a category is a value or the rest: the second branch still spans
    values, so the category's likelihood is kept there as under a split on a number."""
    binary = InheritingHoeffdingTreeClassifier(
        grace_period=200, leaf_prediction="nb", splitter=SeededGaussianSplitter(seed=0),
        nominal_split_inherited=False, binary_split=True,
    )  # fmt: skip
    seen: set[tuple[str, Any, frozenset[Any]]] = set()
    for x, y in tree_stream(20000):
        binary.learn_one(x, y)
        seen |= _young_by_split(binary)
    features = frozenset(tree_stream(1)[0][0])
    assert {kind for kind, _, _ in seen} == {"category", "number"}
    assert {inherited for _, _, inherited in seen} == {features}
