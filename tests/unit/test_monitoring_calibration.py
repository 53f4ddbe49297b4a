"""The reliability diagram: ECE, mean residual and log loss against direct computations,
a calibrated stream against a miscalibrated one, merging and JSON state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from streamlearn.monitoring import ReliabilityBins


def _stream(seed: int, n: int, distort: float = 1.0) -> tuple[list[float], list[float]]:
    """Scores uniform in [0, 1]; labels drawn with probability ``score ** distort``."""
    rng = np.random.default_rng(seed)
    scores = rng.random(n)
    labels = (rng.random(n) < scores**distort).astype(float)
    return scores.tolist(), labels.tolist()


def _filled(scores: list[float], labels: list[float], bins: int = 10) -> ReliabilityBins:
    reliability = ReliabilityBins(bins)
    for score, label in zip(scores, labels, strict=True):
        reliability.add(score, label)
    return reliability


def _direct_ece(scores: list[float], labels: list[float], bins: int = 10) -> float:
    s, y = np.asarray(scores), np.asarray(labels)
    index = np.minimum((s * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += chosen.mean() * abs(y[chosen].mean() - s[chosen].mean())
    return total


def test_ece_matches_a_direct_computation() -> None:
    for seed, bins, distort in ((1, 10, 1.0), (2, 10, 2.0), (3, 7, 0.5), (4, 1, 1.5)):
        scores, labels = _stream(seed, 3_000, distort)
        reliability = _filled(scores, labels, bins)
        assert reliability.ece() == pytest.approx(_direct_ece(scores, labels, bins), rel=1e-9)


def test_calibrated_scores_have_a_small_ece_miscalibrated_a_large_one() -> None:
    calibrated = _filled(*_stream(5, 50_000))
    assert calibrated.ece() < 0.015
    assert abs(calibrated.mean_residual()) < 0.01
    overconfident = _filled(*_stream(6, 50_000, distort=2.0))
    assert overconfident.ece() > 0.1
    assert overconfident.mean_residual() < -0.1
    for mean_score, mean_label, count in calibrated.rows():
        assert abs(mean_label - mean_score) < 0.03
        assert count > 4_000


def test_mean_residual_and_log_loss_match_direct_computations() -> None:
    scores, labels = _stream(7, 2_000)
    scores[0], scores[1] = 0.0, 1.0
    labels[0], labels[1] = 1.0, 0.0  # confidently wrong: clipped, not infinite
    reliability = _filled(scores, labels)
    s, y = np.asarray(scores), np.asarray(labels)
    clipped = np.clip(s, 1e-15, 1 - 1e-15)
    log_loss = float(np.mean(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))))
    assert reliability.log_loss() == pytest.approx(log_loss, rel=1e-9)
    assert reliability.mean_residual() == pytest.approx(float(np.mean(y - s)), abs=1e-12)
    assert reliability.count == 2_000


def test_rows_are_the_non_empty_bins_in_score_order() -> None:
    reliability = ReliabilityBins()
    for score, label in ((0.05, 0.0), (0.15, 1.0), (0.12, 0.0), (0.95, 1.0), (1.0, 1.0)):
        reliability.add(score, label)
    rows = reliability.rows()
    assert [count for _, _, count in rows] == [1.0, 2.0, 2.0]
    assert rows[0] == pytest.approx((0.05, 0.0, 1.0))
    assert rows[1] == pytest.approx((0.135, 0.5, 2.0))
    assert rows[2] == pytest.approx((0.975, 1.0, 2.0))


def test_scores_are_clipped_and_bins_are_left_closed() -> None:
    reliability = ReliabilityBins()
    reliability.add(-0.5, 0.0)
    reliability.add(1.7, 1.0)
    reliability.add(0.1, 0.0)
    assert reliability.weights[0] == 1.0
    assert reliability.score_sums[0] == 0.0
    assert reliability.weights[9] == 1.0
    assert reliability.score_sums[9] == 1.0
    assert reliability.weights[1] == 1.0


def test_weights_count_like_repeats() -> None:
    weighted, repeated = ReliabilityBins(), ReliabilityBins()
    weighted.add(0.3, 1.0, weight=3.0)
    weighted.add(0.8, 0.0, weight=0.0)
    for _ in range(3):
        repeated.add(0.3, 1.0)
    assert weighted.count == 3.0
    assert weighted.ece() == pytest.approx(repeated.ece())
    assert weighted.log_loss() == pytest.approx(repeated.log_loss())
    assert len(weighted.rows()) == len(repeated.rows()) == 1
    assert weighted.rows()[0] == pytest.approx(repeated.rows()[0])


def test_merge_is_adding_everything_to_one() -> None:
    scores, labels = _stream(8, 1_000, distort=1.3)
    first, second = _filled(scores[:400], labels[:400]), _filled(scores[400:], labels[400:])
    first.merge(second)
    whole = _filled(scores, labels)
    assert first.count == whole.count
    assert first.ece() == pytest.approx(whole.ece(), rel=1e-12)
    assert first.log_loss() == pytest.approx(whole.log_loss(), rel=1e-12)
    with pytest.raises(ValueError, match="bins"):
        first.merge(ReliabilityBins(5))


def test_empty_bins_give_zeros() -> None:
    reliability = ReliabilityBins()
    assert reliability.count == 0.0
    assert reliability.ece() == 0.0
    assert reliability.mean_residual() == 0.0
    assert reliability.log_loss() == 0.0
    assert reliability.rows() == []


def test_json_round_trips_exactly() -> None:
    reliability = _filled(*_stream(9, 500, distort=0.7), bins=12)
    data = json.loads(json.dumps(reliability.to_json()))
    restored = ReliabilityBins.from_json(data)
    assert restored == reliability
    assert restored.to_json() == reliability.to_json()
    assert restored.ece() == reliability.ece()
    assert restored.log_loss() == reliability.log_loss()
    restored.add(0.5, 1.0)
    assert restored != reliability
    with pytest.raises(ValueError, match="expected 12 values"):
        ReliabilityBins.from_json({**data, "weights": [1.0]})


@pytest.mark.parametrize(
    ("score", "label", "weight", "message"),
    [
        (math.nan, 1.0, 1.0, "NaN"),
        (0.5, 2.0, 1.0, "label"),
        (0.5, math.nan, 1.0, "label"),
        (0.5, 1.0, -1.0, "weight"),
        (0.5, 1.0, math.inf, "weight"),
    ],
)
def test_bad_predictions_are_refused(
    score: float, label: float, weight: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ReliabilityBins().add(score, label, weight)


def test_at_least_one_bin() -> None:
    with pytest.raises(ValueError, match="bins"):
        ReliabilityBins(0)
