"""ThresholdAuc gives River's ROCAUC figure bit for bit (models/threshold_auc.py)."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from river import metrics as river_metrics

from streamlearn.models.threshold_auc import ThresholdAuc


def _stream(seed: int, n: int) -> list[tuple[Any, Any, float]]:
    rng = random.Random(seed)
    edges = [i / 9 for i in range(10)] + [0.0, 1.0, -1e-7, 1 + 1e-7, math.nan, -0.5, 1.5]
    rows: list[tuple[Any, Any, float]] = []
    for _ in range(n):
        truth: Any = rng.random() < 0.3
        if rng.random() < 0.05:
            truth = 1.0 if truth else 0.0  # River compares with pos_val: 1.0 counts as True
        score: Any = rng.choice(edges) if rng.random() < 0.1 else rng.random()
        if rng.random() < 0.05:
            score = {True: score, False: 1 - score}
        weight = rng.choice([1.0, 1, 0.25, rng.uniform(0.01, 3.0), 1e-9, 1e6])
        rows.append((truth, score, weight))
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_the_figure_is_rivers_at_every_step(seed: int) -> None:
    river: Any = river_metrics.ROCAUC()  # type: ignore[no-untyped-call]
    ours = ThresholdAuc()
    assert ours.get() == float(river.get())  # nothing seen yet
    for index, (truth, score, weight) in enumerate(_stream(seed, 3000)):
        river.update(truth, score, weight)
        ours.update(truth, score, weight)
        if index % 37 == 0 or index < 20:
            assert ours.get() == float(river.get()), index
    assert ours.get() == float(river.get())


def test_other_threshold_counts_and_one_class_only() -> None:
    for n in (2, 3, 50):
        river: Any = river_metrics.ROCAUC(n)  # type: ignore[no-untyped-call]
        ours = ThresholdAuc(n)
        for _truth, score, weight in _stream(n, 500):
            river.update(True, score, weight)
            ours.update(True, score, weight)
        assert ours.get() == float(river.get())


def test_both_classes_are_known_once_each_was_counted() -> None:
    auc = ThresholdAuc()
    assert not auc.has_both_classes()
    for _ in range(5):
        auc.update(True, 0.9, 1.0)
        auc.update(1.0, 0.2, 0.5)  # River's pos_val test: 1.0 is a positive
    assert not auc.has_both_classes()
    assert auc.get() == 0.0  # River's figure over one class: no ranking in it
    auc.update(False, 0.1, 1e-9)
    assert auc.has_both_classes()
    negatives_only = ThresholdAuc()
    negatives_only.update(0.0, 0.7, 1.0)
    negatives_only.update(False, {True: 0.3, False: 0.7}, 2.0)
    assert not negatives_only.has_both_classes()
