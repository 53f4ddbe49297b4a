"""Drift statistics against independent computations (scipy, a hand-written PSI), and their
properties: zero for identical distributions, symmetric where they should be, growing with
a shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]
from scipy.stats import wasserstein_distance  # type: ignore[import-untyped]

from streamlearn.monitoring import (
    CategoricalHistogram,
    NumericHistogram,
    batch_statistics,
    jensen_shannon,
    normed_wasserstein,
    psi,
    statistic_names,
    statistics,
)


def _hand_psi(reference: list[float], current: list[float], epsilon: float = 1e-4) -> float:
    total_r, total_c = sum(reference), sum(current)
    value = 0.0
    for r_count, c_count in zip(reference, current, strict=True):
        r = max(r_count / total_r, epsilon)
        c = max(c_count / total_c, epsilon)
        value += (c - r) * math.log(c / r)
    return value


def _std(counts: list[float], centres: list[float]) -> float:
    """The standard deviation of ``counts`` placed at ``centres`` (1 when 0, as normed)."""
    p, x = np.asarray(counts) / sum(counts), np.asarray(centres)
    return math.sqrt(float(p @ (x - p @ x) ** 2)) or 1.0


def _count_pairs(seed: int, cases: int = 50) -> list[tuple[list[float], list[float]]]:
    """Random count vectors of 2 to 15 bins, some bins empty."""
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(cases):
        size = int(rng.integers(2, 16))
        reference = rng.integers(0, 50, size=size) * (rng.random(size) > 0.2)
        current = rng.integers(0, 50, size=size) * (rng.random(size) > 0.2)
        reference[0] += 1
        current[-1] += 1
        pairs.append((reference.astype(float).tolist(), current.astype(float).tolist()))
    return pairs


def _normal_histograms(shift: float, n: int = 20_000) -> tuple[NumericHistogram, NumericHistogram]:
    rng = np.random.default_rng(11)
    reference = NumericHistogram.from_reference(rng.normal(size=n).tolist())
    current = reference.empty_like()
    for value in rng.normal(shift, size=n).tolist():
        current.add(value)
    return reference, current


def test_psi_matches_a_hand_written_one() -> None:
    for reference, current in _count_pairs(1):
        assert psi(reference, current) == pytest.approx(_hand_psi(reference, current), rel=1e-12)
        assert psi(reference, current, epsilon=1e-3) == pytest.approx(
            _hand_psi(reference, current, 1e-3), rel=1e-12
        )


def test_jensen_shannon_matches_scipy() -> None:
    for reference, current in _count_pairs(2):
        expected = float(jensenshannon(reference, current))
        assert jensen_shannon(reference, current) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_normed_wasserstein_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for reference, current in _count_pairs(3):
        centres = np.sort(rng.normal(size=len(reference)) * 10).tolist()
        std = _std(reference, centres)
        distance = wasserstein_distance(centres, centres, u_weights=reference, v_weights=current)
        assert normed_wasserstein(reference, current, centres) == pytest.approx(
            distance / std, rel=1e-9, abs=1e-12
        )


def test_normed_wasserstein_does_not_need_sorted_centres() -> None:
    reference, current = [1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]
    centres = [0.0, 1.0, 2.0, 5.0]
    order = [2, 0, 3, 1]
    shuffled = normed_wasserstein(
        [reference[i] for i in order], [current[i] for i in order], [centres[i] for i in order]
    )
    assert shuffled == pytest.approx(normed_wasserstein(reference, current, centres), rel=1e-12)


def test_wasserstein_of_a_reference_without_spread_is_not_normed() -> None:
    # All reference mass at one centre: std 0, so the distance is divided by 1.
    assert normed_wasserstein([5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [1.0, 2.0, 4.0]) == 3.0


def test_identical_distributions_give_zero() -> None:
    for reference, _ in _count_pairs(4):
        scaled = [count * 7 for count in reference]
        assert psi(reference, scaled) == pytest.approx(0.0, abs=1e-15)
        assert jensen_shannon(reference, scaled) == pytest.approx(0.0, abs=1e-7)
        centres = list(range(len(reference)))
        assert normed_wasserstein(reference, scaled, centres) == pytest.approx(0.0, abs=1e-12)
        assert psi(reference, reference) == 0.0
        assert jensen_shannon(reference, reference) == 0.0
        assert normed_wasserstein(reference, reference, centres) == 0.0


def test_psi_and_jensen_shannon_are_symmetric_wasserstein_up_to_its_norm() -> None:
    for reference, current in _count_pairs(5):
        assert psi(reference, current) == pytest.approx(psi(current, reference), rel=1e-12)
        assert jensen_shannon(reference, current) == pytest.approx(
            jensen_shannon(current, reference), rel=1e-12
        )
        centres = np.arange(len(reference), dtype=float).tolist()
        forward = normed_wasserstein(reference, current, centres) * _std(reference, centres)
        backward = normed_wasserstein(current, reference, centres) * _std(current, centres)
        assert forward == pytest.approx(backward, rel=1e-9, abs=1e-12)


def test_jensen_shannon_is_bounded() -> None:
    assert jensen_shannon([1.0, 0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(math.log(2)))
    for reference, current in _count_pairs(6):
        assert 0 <= jensen_shannon(reference, current) <= math.sqrt(math.log(2)) + 1e-12


def test_every_statistic_grows_with_a_shift() -> None:
    previous = {"psi": -1.0, "jensen_shannon": -1.0, "wasserstein": -1.0}
    for shift in (0.0, 0.1, 0.3, 0.6, 1.0, 2.0):
        reference, current = _normal_histograms(shift)
        values = statistics(reference, current)
        assert all(values[name] > previous[name] for name in previous), (shift, values)
        previous = values
    # A shift of one standard deviation moves the normed Wasserstein to about 1 (binning
    # and open-ended bins' centres make it approximate).
    assert 0.7 < statistics(*_normal_histograms(1.0))["wasserstein"] < 1.1


def test_statistics_keys_by_kind_and_same_values_as_the_functions() -> None:
    reference, current = _normal_histograms(0.3)
    values = statistics(reference, current)
    assert (
        list(values) == ["psi", "jensen_shannon", "wasserstein"] == list(statistic_names(reference))
    )
    assert values["psi"] == psi(reference.counts, current.counts)
    assert values["jensen_shannon"] == jensen_shannon(reference.counts, current.counts)
    assert values["wasserstein"] == normed_wasserstein(
        reference.counts, current.counts, reference.centres()
    )
    categorical = CategoricalHistogram.from_reference(list("aabbbcd"))
    window = categorical.empty_like()
    for value in "abbz":
        window.add(value)
    categorical_values = statistics(categorical, window)
    assert (
        list(categorical_values) == ["psi", "jensen_shannon"] == list(statistic_names(categorical))
    )
    assert categorical_values["psi"] == psi(categorical.counts, window.counts)


def test_batch_statistics_are_the_per_window_statistics() -> None:
    reference, _ = _normal_histograms(0.0)
    windows = np.random.default_rng(8).multinomial(300, [0.1] * 10, size=25)
    batch = batch_statistics(reference, windows)
    for row, counts in enumerate(windows.tolist()):
        single = statistics(reference, NumericHistogram(reference.edges, counts))
        for name, value in single.items():
            assert batch[name][row] == pytest.approx(value, rel=1e-12, abs=1e-15)


def test_histograms_must_share_their_bins() -> None:
    numeric = NumericHistogram([0.0, 1.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="edges differ"):
        statistics(numeric, NumericHistogram([0.0, 2.0], [1.0, 1.0, 1.0]))
    categorical = CategoricalHistogram(["a", "b"], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="categories differ"):
        statistics(categorical, CategoricalHistogram(["b", "a"], [1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="numeric histogram with a categorical"):
        statistics(numeric, categorical)
    with pytest.raises(ValueError, match="rows of 3"):
        batch_statistics(numeric, [[1.0, 2.0]])


@pytest.mark.parametrize(
    ("reference", "current", "message"),
    [
        ([1.0, 2.0], [1.0, 2.0, 3.0], "bins"),
        ([0.0, 0.0], [1.0, 2.0], "all be zero"),
        ([1.0, 2.0], [0.0, 0.0], "all be zero"),
        ([1.0, -2.0], [1.0, 2.0], "non-negative"),
        ([1.0, float("nan")], [1.0, 2.0], "finite"),
        ([], [], "non-empty"),
    ],
)
def test_bad_count_vectors_are_refused(
    reference: list[float], current: list[float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        psi(reference, current)
    with pytest.raises(ValueError, match=message):
        jensen_shannon(reference, current)


def test_wasserstein_needs_one_centre_per_bin() -> None:
    with pytest.raises(ValueError, match="centre per bin"):
        normed_wasserstein([1.0, 2.0], [2.0, 1.0], [0.0])
