"""Thresholds for a target false-alarm rate: checked empirically on fresh windows with no
drift (they alert at about that rate) and on shifted ones (they alert almost always)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from streamlearn.monitoring import (
    DEFAULT_THRESHOLDS,
    CategoricalHistogram,
    NumericHistogram,
    batch_statistics,
    drift_thresholds,
    exceeded,
    rate_threshold,
    statistics,
)

NO_FLOORS: dict[str, float] = {}


def _normal_reference(n: int = 20_000, seed: int = 0) -> NumericHistogram:
    return NumericHistogram.from_reference(np.random.default_rng(seed).normal(size=n).tolist())


def _binned_windows(
    reference: NumericHistogram, values: np.ndarray[tuple[int, int], np.dtype[np.float64]]
) -> np.ndarray[tuple[int, int], np.dtype[np.int64]]:
    """Each row of raw values counted into the reference's bins (as ``add`` would)."""
    bins = np.searchsorted(np.asarray(reference.edges), values, side="left")
    offsets = np.arange(values.shape[0])[:, np.newaxis] * len(reference.counts)
    flat = np.bincount((bins + offsets).ravel(), minlength=values.shape[0] * len(reference.counts))
    return flat.reshape(values.shape[0], len(reference.counts))


def _exceedance_rates(
    reference: NumericHistogram | CategoricalHistogram,
    windows: np.ndarray[tuple[int, int], np.dtype[np.int64]],
    thresholds: dict[str, float],
) -> dict[str, float]:
    values = batch_statistics(reference, windows)
    return {name: float((values[name] > thresholds[name]).mean()) for name in values}


def test_keys_follow_the_histogram_kind() -> None:
    numeric = drift_thresholds(_normal_reference(), 200)
    assert list(numeric) == ["psi", "jensen_shannon", "wasserstein"]
    categorical = CategoricalHistogram.from_reference(list("aaabbbbccd"))
    assert list(drift_thresholds(categorical, 200)) == ["psi", "jensen_shannon"]


def test_thresholds_are_deterministic_for_a_seed() -> None:
    reference = _normal_reference()
    first = drift_thresholds(reference, 150, floors=NO_FLOORS, seed=7)
    assert drift_thresholds(reference, 150, floors=NO_FLOORS, seed=7) == first
    assert drift_thresholds(reference, 150, floors=NO_FLOORS, seed=8) != first


def test_no_drift_windows_alert_at_about_the_false_alarm_rate() -> None:
    reference = _normal_reference()
    thresholds = drift_thresholds(reference, 200, false_alarm_rate=0.01, floors=NO_FLOORS)
    # Fresh windows of raw values from the same distribution (not the reference's own
    # proportions), binned as the monitor bins them.
    fresh = np.random.default_rng(1).normal(size=(20_000, 200))
    rates = _exceedance_rates(reference, _binned_windows(reference, fresh), thresholds)
    for name, rate in rates.items():
        assert 0.005 <= rate <= 0.02, (name, rate)


def test_no_drift_categorical_windows_alert_at_about_the_false_alarm_rate() -> None:
    rng = np.random.default_rng(2)
    weights = np.array([30, 20, 15, 10, 8, 6, 5, 3, 2, 1], dtype=float)
    reference = CategoricalHistogram.from_reference(
        [f"c{index}" for index in rng.choice(10, size=50_000, p=weights / weights.sum())], top_k=8
    )
    thresholds = drift_thresholds(reference, 300, false_alarm_rate=0.01, floors=NO_FLOORS)
    windows = np.random.default_rng(3).multinomial(
        300, np.asarray(reference.counts) / reference.total, size=20_000
    )
    rates = _exceedance_rates(reference, windows, thresholds)
    for name, rate in rates.items():
        assert 0.005 <= rate <= 0.02, (name, rate)


def test_a_half_standard_deviation_shift_is_detected_almost_always() -> None:
    reference = _normal_reference()
    thresholds = drift_thresholds(reference, 200)
    shifted = np.random.default_rng(4).normal(0.5, size=(2_000, 200))
    windows = _binned_windows(reference, shifted)
    rates = _exceedance_rates(reference, windows, thresholds)
    assert rates["wasserstein"] >= 0.99, rates
    values = batch_statistics(reference, windows)
    alerted = np.zeros(len(windows), dtype=bool)
    for name, array in values.items():
        alerted |= array > thresholds[name]
    assert alerted.mean() >= 0.99
    # The single-window path agrees with the batch one.
    window = NumericHistogram(reference.edges, windows[0].tolist())
    assert exceeded(statistics(reference, window), thresholds)


def test_thresholds_shrink_with_the_window_down_to_the_floors() -> None:
    reference = _normal_reference()
    small = drift_thresholds(reference, 50, floors=NO_FLOORS)
    large = drift_thresholds(reference, 5_000, floors=NO_FLOORS)
    assert all(large[name] < small[name] for name in small)
    floored = drift_thresholds(reference, 100_000)
    assert floored == {name: DEFAULT_THRESHOLDS[name] for name in floored}
    unfloored = drift_thresholds(reference, 100_000, floors=NO_FLOORS)
    assert drift_thresholds(reference, 100_000, floors={"psi": 0.5}) == {
        "psi": 0.5,
        "jensen_shannon": unfloored["jensen_shannon"],
        "wasserstein": unfloored["wasserstein"],
    }


def test_a_lower_false_alarm_rate_raises_the_thresholds() -> None:
    reference = _normal_reference()
    loose = drift_thresholds(reference, 200, false_alarm_rate=0.05, floors=NO_FLOORS)
    strict = drift_thresholds(reference, 200, false_alarm_rate=1e-3, floors=NO_FLOORS)
    assert all(strict[name] > loose[name] for name in loose)


def test_a_reference_with_one_occupied_bin_gets_the_floors() -> None:
    reference = NumericHistogram.from_reference([3.0] * 100)
    assert drift_thresholds(reference, 50) == DEFAULT_THRESHOLDS


def test_ten_bins_twenty_thousand_draws_is_fast() -> None:
    reference = _normal_reference()
    assert len(reference.counts) == 10
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        drift_thresholds(reference, 500, draws=20_000)
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.2, timings


def _binomial_tail(n: int, p: float, share: float) -> float:
    """P(X / n > share) for X ~ Binomial(n, p), exactly."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1) if k / n > share)


@pytest.mark.parametrize("rate", [0.02, 0.05, 0.1, 0.2])
def test_rate_threshold_holds_its_false_alarm_rate_on_small_windows(rate: float) -> None:
    """Found by a data scientist: the normal approximation of a binomial share is far off
    in its upper tail when few records are expected to hit (the filtered share of a 10 s
    bucket at night, a null rate near 0). A no-drift window of 3 records over a reference
    share of 0.02 crossed the 0.001 threshold 5.9 % of the time, 59 times the target; one
    of 100 at 0.05, 0.4 %. With a reference this large its own noise is negligible, so
    the window's count is binomial and its tail must stay within the rate."""
    for window in (1, 2, 3, 5, 8, 12, 20, 50, 100, 200):
        threshold = rate_threshold(rate, 1_000_000, window, min_margin=0.0)
        assert _binomial_tail(window, rate, threshold) <= 1e-3, (window, threshold)


def test_rate_threshold_is_not_far_above_what_the_rate_needs() -> None:
    # Exact, not merely conservative: on a large window the next share down would
    # cross more often than the target.
    rate, window = 0.1, 2_000
    threshold = rate_threshold(rate, 1_000_000, window, min_margin=0.0)
    rates = np.random.default_rng(5).binomial(window, rate, size=200_000) / window
    assert float((rates > threshold - 1 / window).mean()) >= 0.0004


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"window": 0}, "window"),
        ({"draws": 0}, "draws"),
        ({"false_alarm_rate": 0.0}, "false_alarm_rate"),
        ({"false_alarm_rate": 1.0}, "false_alarm_rate"),
    ],
)
def test_bad_threshold_arguments_are_refused(arguments: dict[str, float], message: str) -> None:
    options = {"window": 100, "draws": 100, "false_alarm_rate": 0.01} | arguments
    with pytest.raises(ValueError, match=message):
        drift_thresholds(
            _normal_reference(1_000),
            int(options["window"]),
            draws=int(options["draws"]),
            false_alarm_rate=options["false_alarm_rate"],
        )
    with pytest.raises(ValueError, match="empty"):
        drift_thresholds(NumericHistogram([0.0]), 100)


def test_rate_threshold_widens_with_the_references_own_noise() -> None:
    # The reference is a sample too: a small one leaves its share uncertain.
    assert rate_threshold(0.2, 300, 100, min_margin=0.0) > rate_threshold(
        0.2, 1_000_000, 100, min_margin=0.0
    )
    # A looser false-alarm rate gives a lower threshold.
    assert rate_threshold(0.3, 1_000, 100, false_alarm_rate=0.05, min_margin=0.0) < (
        rate_threshold(0.3, 1_000, 100, min_margin=0.0)
    )


def test_rate_threshold_margin_floor_and_cap() -> None:
    # Large samples: the statistical margin is tiny, the minimum margin applies.
    assert rate_threshold(0.2, 1e7, 1e6) == pytest.approx(0.25)
    assert rate_threshold(0.2, 1e7, 1e6, min_margin=0.0) < 0.21
    assert rate_threshold(0.99, 100, 10) == 1.0
    # A share never seen in the reference still has sampling noise: a reference of 1,000
    # records without a hit does not rule out one hit in a window of 50.
    assert rate_threshold(0.0, 1_000, 50, min_margin=0.0) >= 1 / 50
    assert rate_threshold(1.0, 1_000, 50) == 1.0
    # Shrinks as the window grows.
    assert rate_threshold(0.1, 5_000, 100) > rate_threshold(0.1, 5_000, 1_000)


def test_rate_threshold_false_alarms_stay_near_the_target() -> None:
    reference_rate, reference_n, window_n = 0.1, 50_000, 2_000
    threshold = rate_threshold(
        reference_rate, reference_n, window_n, false_alarm_rate=0.01, min_margin=0.0
    )
    rates = np.random.default_rng(5).binomial(window_n, reference_rate, size=100_000) / window_n
    assert 0.004 <= float((rates > threshold).mean()) <= 0.02


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((1.5, 100, 10), "reference_rate"),
        ((-0.1, 100, 10), "reference_rate"),
        ((0.1, 0.5, 10), "reference_n"),
        ((0.1, 100, 0), "window_n"),
    ],
)
def test_bad_rate_arguments_are_refused(
    arguments: tuple[float, float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        rate_threshold(*arguments)
    with pytest.raises(ValueError, match="false_alarm_rate"):
        rate_threshold(0.1, 100, 10, false_alarm_rate=1.0)
