"""What the learning lab judges: one model's judged rows over serving time, and the
figures of a span of them (exact AUC, AUC within each serving version, reliability bins).

Kept apart from :mod:`~streamlearn.simulate.learning_lab`, which runs the loop: these are
plain functions of arrays, used by the lab and by ``bench/learning.py`` alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamlearn.models.synthetic import exact_auc
from streamlearn.monitoring.calibration import ReliabilityBins

BINS = 10
"""Reliability bins for the ECE (the monitor's calibration check uses 10 too)."""


@dataclass
class JudgedColumns:
    """Growing columns of one model's judged rows (numpy arrays when figures are asked)."""

    at_s: list[float] = field(default_factory=list)
    version: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    truth: list[float] = field(default_factory=list)
    label: list[bool] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    """The model inputs, when the lab keeps them (:attr:`LearningLab.keep_inputs`)."""
    _arrays: tuple[int, dict[str, np.ndarray[Any, Any]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def arrays(self) -> dict[str, np.ndarray[Any, Any]]:
        """The columns as arrays (inputs aside), made once per length rather than once per
        window asked: ``bench/learning.py`` asks for every minute of a 30-minute run, and
        each ask converted every list again."""
        made = self._arrays
        if made is not None and made[0] == len(self.at_s):
            return made[1]
        arrays = {
            "at_s": np.asarray(self.at_s, dtype=float),
            "version": np.asarray(self.version, dtype=np.int64),
            "score": np.asarray(self.score, dtype=float),
            "truth": np.asarray(self.truth, dtype=float),
            "label": np.asarray(self.label, dtype=bool),
            "weight": np.asarray(self.weight, dtype=float),
        }
        for array in arrays.values():
            array.flags.writeable = False  # shared by every caller until the next row
        self._arrays = (len(self.at_s), arrays)
        return arrays


@dataclass(frozen=True)
class Figures:
    """One model over one span of serving time (None: not enough data to say)."""

    start_s: float
    end_s: float
    impressions: int
    served_auc: float | None
    ceiling_auc: float | None
    log_loss: float | None
    truth_log_loss: float | None
    ece: float | None
    prequential_auc: float | None
    prequential_log_loss: float | None
    versions: int
    """Serving versions (≥ 1) that served in the span."""
    truth_ece: float | None = None
    """The true probabilities' ECE on the same impressions: what sampling noise alone gives
    (an ECE goal below it cannot be judged on this many impressions)."""
    ece_by_truth: float | None = None
    """The served scores' ECE with each impression's true click probability in place of its
    sampled click: the same bins and the same quantity (how far the click rate of a score
    bin is from its mean score), without the clicks' sampling noise, since the mean true
    probability of a bin estimates its click rate with far less variance than its mean
    click does. The truth's own is 0."""


def auc(labels: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> float | None:
    """Exact ROC AUC (ties count half); None without both classes."""
    positives = int(labels.sum())
    if positives == 0 or positives == len(labels):
        return None
    return exact_auc(labels.tolist(), scores.tolist())


def served_auc(
    versions: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]
) -> float | None:
    """Per-version exact AUC, weighted by examples, over versions ≥ 1 with both classes."""
    total = weighted = 0.0
    for version in np.unique(versions[versions > 0]):
        chosen = versions == version
        value = auc(labels[chosen], scores[chosen])
        if value is not None:
            count = float(chosen.sum())
            weighted += value * count
            total += count
    return weighted / total if total else None


def reliability(
    scores: np.ndarray[Any, Any], labels: np.ndarray[Any, Any], weights: np.ndarray[Any, Any]
) -> ReliabilityBins | None:
    """The reliability bins (ECE, log loss) of labelled scores (a label may be a probability:
    the truth's); None when there are none."""
    if not len(scores):
        return None
    bins = ReliabilityBins(BINS)
    rows = zip(scores.tolist(), labels.tolist(), weights.tolist(), strict=True)
    for score, label, weight in rows:
        bins.add(score, float(label), weight)
    return bins


__all__: Sequence[str] = (
    "BINS",
    "Figures",
    "JudgedColumns",
    "auc",
    "reliability",
    "served_auc",
)
