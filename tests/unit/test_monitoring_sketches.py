"""Fixed-bin histograms: bins chosen once from a reference, counting, merging, JSON state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamlearn.monitoring import (
    OTHER,
    CategoricalHistogram,
    NumericHistogram,
    histogram_from_json,
)


def _through_json(data: dict[str, object]) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(json.dumps(data))
    return loaded


def test_reference_edges_are_distinct_quantiles_and_counts_fill_the_bins() -> None:
    values = np.random.default_rng(3).normal(10, 2, size=1001).tolist()
    histogram = NumericHistogram.from_reference(values, bins=10)
    expected = np.unique(np.quantile(values, np.arange(1, 10) / 10, method="linear"))
    assert histogram.edges == tuple(expected.tolist())
    assert len(histogram.counts) == 10
    assert histogram.total == 1001
    # Quantile edges split the reference into (nearly) equal parts.
    assert all(99 <= count <= 102 for count in histogram.counts)


def test_counts_from_the_reference_equal_adding_one_by_one() -> None:
    values = np.random.default_rng(4).exponential(size=500).round(1).tolist()
    histogram = NumericHistogram.from_reference(values, bins=8)
    one_by_one = histogram.empty_like()
    for value in values:
        one_by_one.add(value)
    assert one_by_one == histogram
    assert one_by_one.counts == histogram.counts


def test_bins_are_right_closed() -> None:
    histogram = NumericHistogram([1.0, 2.0, 3.0])
    for value in (-5.0, 1.0, 1.5, 2.0, 2.0000001, 3.0, 3.5, float("inf"), float("-inf")):
        histogram.add(value)
    # (-inf, 1], (1, 2], (2, 3], (3, inf)
    assert histogram.counts == [3.0, 2.0, 2.0, 2.0]


def test_adding_agrees_with_searchsorted() -> None:
    rng = np.random.default_rng(5)
    edges = np.sort(rng.normal(size=7))
    values = np.concatenate([rng.normal(size=300), edges, edges])
    histogram = NumericHistogram(edges.tolist())
    for value in values.tolist():
        histogram.add(value)
    expected = np.bincount(np.searchsorted(edges, values, side="left"), minlength=8)
    assert histogram.counts == expected.astype(float).tolist()


def test_weighted_add() -> None:
    histogram = NumericHistogram([0.0])
    histogram.add(-1.0, 2.5)
    histogram.add(1.0, 0.0)
    assert histogram.counts == [2.5, 0.0]
    with pytest.raises(ValueError, match="weight"):
        histogram.add(1.0, -1.0)


def test_a_discrete_feature_gets_fewer_bins() -> None:
    hours = [hour for hour in range(24) for _ in range(10)]
    histogram = NumericHistogram.from_reference(hours, bins=100)
    # Most quantiles fall on an hour itself (and repeat); those between two hours are
    # interpolated ("linear"), so an edge may sit between them.
    assert len(histogram.edges) < 50
    assert set(range(24)) <= set(histogram.edges)
    assert histogram.total == 240
    flags = NumericHistogram.from_reference([0.0] * 70 + [1.0] * 30, bins=10)
    assert flags.edges == pytest.approx((0.0, 0.3, 1.0))
    assert flags.counts == [70.0, 0.0, 30.0, 0.0]


def test_a_reference_of_the_largest_doubles_gets_finite_edges() -> None:
    """Found by a new user: a feature of -1.7e308 and 1.7e308 in predictions another
    producer wrote (Avro doubles; streamlearn's workers refuse numbers beyond 2^63) made
    a quantile between the two overflow (1.7e308 - -1.7e308 is inf), and
    ``from_reference`` raised "edges must be finite" inside the monitor: its worker
    failed, read the batch again after the restart, and failed again, for good."""
    largest = float(np.finfo(float).max)
    values = [largest, -largest] * 500
    histogram = NumericHistogram.from_reference(values)
    assert all(np.isfinite(histogram.edges))
    assert histogram.total == 1000
    # The edges of ordinary values are the same as before, bit for bit.
    ordinary = np.random.default_rng(0).lognormal(3.0, 0.8, 1000).tolist()
    expected = np.unique(np.quantile(ordinary, np.arange(1, 10) / 10, method="linear"))
    assert NumericHistogram.from_reference(ordinary).edges == tuple(expected.tolist())


def test_all_equal_values_give_one_edge() -> None:
    histogram = NumericHistogram.from_reference([3.0] * 5)
    assert histogram.edges == (3.0,)
    assert histogram.counts == [5.0, 0.0]
    assert histogram.labels() == ["≤3", ">3"]
    assert histogram.centres() == [2.5, 3.5]


@pytest.mark.parametrize(
    ("values", "bins", "message"),
    [
        ([], 10, "empty"),
        ([1.0, float("nan")], 10, "finite"),
        ([1.0, float("inf")], 10, "finite"),
        ([1.0, 2.0], 1, "bins"),
    ],
)
def test_bad_references_are_refused(values: list[float], bins: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NumericHistogram.from_reference(values, bins=bins)


@pytest.mark.parametrize(
    ("edges", "counts", "message"),
    [
        ([], None, "at least one edge"),
        ([1.0, 1.0], None, "strictly increasing"),
        ([2.0, 1.0], None, "strictly increasing"),
        ([float("inf")], None, "finite"),
        ([1.0], [1.0], "expected 2 counts"),
        ([1.0], [1.0, -1.0], "non-negative"),
    ],
)
def test_bad_numeric_histograms_are_refused(
    edges: list[float], counts: list[float] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        NumericHistogram(edges, counts)


def test_nan_is_not_binned() -> None:
    with pytest.raises(ValueError, match="NaN"):
        NumericHistogram([0.0]).add(float("nan"))


def test_merge_adds_counts_and_needs_the_same_edges() -> None:
    first = NumericHistogram([0.0, 1.0], [1.0, 2.0, 3.0])
    first.merge(NumericHistogram([0.0, 1.0], [0.5, 0.0, 1.0]))
    assert first.counts == [1.5, 2.0, 4.0]
    with pytest.raises(ValueError, match="same edges"):
        first.merge(NumericHistogram([0.0, 2.0]))


def test_labels_and_centres() -> None:
    histogram = NumericHistogram([1.5, 3.0, 7.0])
    assert histogram.labels() == ["≤1.5", "(1.5, 3]", "(3, 7]", ">7"]
    assert histogram.centres() == [0.75, 2.25, 5.0, 9.0]
    assert NumericHistogram([0.000012345, 1e7]).labels() == [
        "≤1.2345e-05",
        "(1.2345e-05, 1e+07]",
        ">1e+07",
    ]


def test_empty_like_keeps_the_bins_only() -> None:
    histogram = NumericHistogram([0.0, 1.0], [1.0, 2.0, 3.0])
    empty = histogram.empty_like()
    assert empty.edges == histogram.edges
    assert empty.counts == [0.0, 0.0, 0.0]
    empty.add(5.0)
    assert histogram.counts == [1.0, 2.0, 3.0]


def test_numeric_json_round_trips_exactly() -> None:
    values = np.random.default_rng(6).lognormal(size=333).tolist()
    histogram = NumericHistogram.from_reference(values, bins=7)
    histogram.add(0.1 + 0.2, 1 / 3)
    data = _through_json(histogram.to_json())
    assert data["type"] == "numeric"
    restored = NumericHistogram.from_json(data)
    assert restored == histogram
    assert restored.edges == histogram.edges
    assert restored.counts == histogram.counts
    assert restored.to_json() == histogram.to_json()
    assert histogram_from_json(data) == histogram


def test_categorical_reference_keeps_the_most_frequent_ties_by_name() -> None:
    values = ["b"] * 5 + ["a"] * 3 + ["c"] * 3 + ["d"] * 1 + ["e"] * 1
    histogram = CategoricalHistogram.from_reference(values, top_k=3)
    assert histogram.categories == ("b", "a", "c", OTHER)
    assert histogram.counts == [5.0, 3.0, 3.0, 2.0]
    assert histogram.labels() == ["b", "a", "c", OTHER]
    everything = CategoricalHistogram.from_reference(values)
    assert everything.categories == ("b", "a", "c", "d", "e", OTHER)
    assert everything.counts[-1] == 0.0


def test_categorical_unknown_values_count_as_other() -> None:
    histogram = CategoricalHistogram.from_reference(["x", "y", "y"]).empty_like()
    for value in ("y", "new", OTHER, "x", "y"):
        histogram.add(value)
    assert histogram.categories == ("y", "x", OTHER)
    assert histogram.counts == [2.0, 1.0, 2.0]
    assert histogram.total == 5


def test_a_value_named_other_never_gets_its_own_bin() -> None:
    histogram = CategoricalHistogram.from_reference([OTHER, OTHER, "a"])
    assert histogram.categories == ("a", OTHER)
    assert histogram.counts == [1.0, 2.0]


def test_categorical_constructor_appends_other_and_checks_it_is_last() -> None:
    assert CategoricalHistogram(["a"]).categories == ("a", OTHER)
    assert CategoricalHistogram(["a", OTHER], [1, 2]).counts == [1.0, 2.0]
    with pytest.raises(ValueError, match="last"):
        CategoricalHistogram([OTHER, "a"])
    with pytest.raises(ValueError, match="distinct"):
        CategoricalHistogram(["a", "a"])
    with pytest.raises(ValueError, match="expected 2 counts"):
        CategoricalHistogram(["a"], [1.0])
    with pytest.raises(ValueError, match="empty"):
        CategoricalHistogram.from_reference([])
    with pytest.raises(ValueError, match="top_k"):
        CategoricalHistogram.from_reference(["a"], top_k=0)


def test_categorical_merge_and_json() -> None:
    histogram = CategoricalHistogram.from_reference(["a", "b", "b", "c"], top_k=2)
    other = histogram.empty_like()
    other.add("zzz", 0.25)
    histogram.merge(other)
    assert histogram.counts == [2.0, 1.0, 1.25]
    with pytest.raises(ValueError, match="same categories"):
        histogram.merge(CategoricalHistogram(["a"]))
    data = _through_json(histogram.to_json())
    assert data["type"] == "categorical"
    restored = histogram_from_json(data)
    assert isinstance(restored, CategoricalHistogram)
    assert restored == histogram
    assert restored.to_json() == histogram.to_json()
    restored.add("a")
    assert restored.counts == [2.0, 2.0, 1.25]


def test_json_of_the_wrong_kind_is_refused() -> None:
    numeric = NumericHistogram([0.0]).to_json()
    categorical = CategoricalHistogram(["a"]).to_json()
    with pytest.raises(ValueError, match="not a categorical"):
        CategoricalHistogram.from_json(numeric)
    with pytest.raises(ValueError, match="not a numeric"):
        NumericHistogram.from_json(categorical)
    with pytest.raises(ValueError, match="unknown histogram type"):
        histogram_from_json({"edges": [0.0], "counts": [0.0, 0.0]})


def test_numeric_and_categorical_are_never_equal() -> None:
    assert NumericHistogram([0.0]) != CategoricalHistogram(["a"])
    assert NumericHistogram([0.0]) != NumericHistogram([0.0], [1.0, 0.0])
