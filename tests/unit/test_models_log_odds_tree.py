"""A frozen binary tree's log-odds form answers River's probability up to rounding, and the
compiled path reaches River's leaf."""

from __future__ import annotations

import functools
import random
from typing import Any

import pytest
from river.tree.nodes.branch import (
    NominalBinaryBranch,
    NominalMultiwayBranch,
    NumericBinaryBranch,
    NumericMultiwayBranch,
)
from river.tree.nodes.htc_nodes import LeafMajorityClass

from streamlearn.models.compiled_tree import compiled_path
from streamlearn.models.features import SeededGaussianSplitter
from streamlearn.models.inheriting_tree import InheritingHoeffdingTreeClassifier
from streamlearn.models.log_odds_tree import log_odds_leaf, log_odds_tree
from streamlearn.models.safe_pickle import dumps, loads
from tests.tree_inputs import tree_stream

pytestmark = pytest.mark.unit


@functools.cache
def _grown(examples: int) -> InheritingHoeffdingTreeClassifier:
    tree = InheritingHoeffdingTreeClassifier(
        grace_period=200, leaf_prediction="nb", splitter=SeededGaussianSplitter(seed=0)
    )
    for x, y in tree_stream(examples):
        tree.learn_one(x, y)
    return tree


def _probes() -> list[dict[Any, Any]]:
    """The world's inputs, the same with features left out, and unseen categories."""
    rng = random.Random(5)
    probes = [x for x, _ in tree_stream(1500, seed=12)]
    for x in probes[:500]:
        probes.append({key: value for key, value in x.items() if rng.random() < 0.6})
        probes.append({**x, "category": "never seen", "loyalty": "platinum"})
    return probes


def _p(model: Any, x: dict[Any, Any]) -> float:
    return float(model.predict_proba_one(x).get(True, 0.0))


def _leaves(tree: Any) -> list[Any]:
    root = tree._root
    return [root] if not hasattr(root, "iter_leaves") else list(root.iter_leaves())


# 60: a root leaf under the grace period; then grown trees whose young leaves predict with
# their parent's statistics.
@pytest.mark.parametrize("examples", [60, 1200, 5000, 12_000])
def test_it_answers_rivers_probability_up_to_rounding(examples: int) -> None:
    tree = _grown(examples)
    score = log_odds_tree(tree)
    for x in _probes():
        assert score(x) == pytest.approx(_p(tree, x), rel=1e-12, abs=1e-14), x


def test_a_grown_trees_leaves_compile_to_the_log_odds_form() -> None:
    tree = _grown(5000)
    assert {log_odds_leaf(leaf, tree).__name__ for leaf in _leaves(tree)} == {"log_odds"}


def test_a_leaf_it_does_not_cover_gets_rivers_answer() -> None:
    tree = loads(dumps(_grown(5000)))  # a copy: the cached tree stays as it was
    leaf = _leaves(tree)[0]
    leaf.stats = {True: 30.0}  # one class only: no log-odds
    assert log_odds_leaf(leaf, tree).__name__ == "naive_bayes"  # River's, compiled
    tree.nb_threshold = 10**9  # under the threshold: the leaf's own prediction
    assert log_odds_leaf(leaf, tree).__name__ == "own"
    score = log_odds_tree(tree)
    for x in _probes()[:300]:
        assert score(x) == _p(tree, x)


def test_extreme_values_neither_overflow_nor_differ_from_river() -> None:
    tree = _grown(5000)
    score = log_odds_tree(tree)
    base = tree_stream(1, seed=12)[0][0]
    # (model_input drops NaN and infinities before a model sees them; River skips them.)
    for value in (1e100, -1e100, 1e149, float("nan"), float("inf"), float("-inf")):
        x = {**base, "price": value}
        assert 0.0 <= score(x) <= 1.0
        assert score(x) == pytest.approx(_p(tree, x), rel=1e-12, abs=1e-300)
    # Beyond that the square overflows: River raises, and so does the form, by River's
    # own expression.
    x = {**base, "price": 1e200}
    with pytest.raises(OverflowError):
        _p(tree, x)
    with pytest.raises(OverflowError):
        score(x)


@pytest.mark.parametrize("examples", [5000, 12_000])
def test_the_compiled_path_reaches_rivers_leaf(examples: int) -> None:
    root = _grown(examples)._root
    assert len(list(root.iter_leaves())) >= 3
    path = compiled_path(root)
    for x in _probes():
        assert path(x) is root.traverse(x, until_leaf=True)


def _leaf(weight: float) -> LeafMajorityClass:
    return LeafMajorityClass({True: weight}, depth=2, splitter=None)


def test_the_compiled_path_takes_every_branch_type_as_river_does() -> None:
    # A hand-built tree with the four branch types River's trees make, each with its most
    # common child not the first, so that a missing feature or an unseen value shows.
    numeric_multiway = NumericMultiwayBranch(
        {}, "b", (0.5, [0, 1, 4]), 1, _leaf(1), _leaf(9), _leaf(2)
    )
    nominal_multiway = NominalMultiwayBranch(
        {}, "c", ["x", "y", "z"], 1, _leaf(1), _leaf(2), _leaf(7)
    )
    nominal_binary = NominalBinaryBranch({}, "d", "yes", 1, _leaf(1), _leaf(5))
    inner = NumericBinaryBranch({}, "e", 0.0, 1, nominal_binary, numeric_multiway)
    root = NumericBinaryBranch({}, "a", 10.0, 0, inner, nominal_multiway)
    path = compiled_path(root)
    values: dict[str, list[Any]] = {
        "a": [None, 3.0, 10.0, 11.0],
        "b": [None, 0.1, 0.7, 2.1, 9.9, -3.0],
        "c": [None, "x", "y", "z", "w"],
        "d": [None, "yes", "no"],
        "e": [None, -1.0, 0.0, 1.0],
    }
    inputs = [{}]
    for key, options in values.items():
        inputs = [{**x, key: v} if v is not None else x for x in inputs for v in options]
    assert len(inputs) == 4 * 6 * 5 * 3 * 4
    reached = set()
    for x in inputs:
        leaf = path(x)
        assert leaf is root.traverse(x, until_leaf=True), x
        reached.add(id(leaf))
    assert len(reached) == 3 + 3 + 2  # every leaf, so every test was taken both ways
