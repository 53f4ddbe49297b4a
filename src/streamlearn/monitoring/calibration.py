"""Is a served score a probability? A reliability diagram over labelled predictions.

A click model's score is used as a probability (ranking by expected value, bidding), so a
model can rank well and still mislead by being over- or under-confident. The label-join
agent's examples pair each served score with its eventual label; binning them by score
and comparing each bin's mean label with its mean score shows where the model is off,
and the expected calibration error (ECE) sums that up in one number to alert on.

The state is a few sums per bin, so windows merge by addition and the state is plain
JSON for the monitor's changelog-backed store. The log loss is kept as a sum too (it
cannot be recovered from the bins' means).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

LOG_LOSS_CLIP = 1e-15

_FIELDS = ("weights", "score_sums", "label_sums", "log_loss_sums")


class ReliabilityBins:
    """Reliability diagram over equal-width score bins [0, 0.1), ..., [0.9, 1.0]; mergeable,
    JSON state.

    Per bin: the total weight, the weighted sums of scores, of labels and of log losses.
    A score of exactly 1.0 belongs to the last bin.
    """

    def __init__(self, bins: int = 10) -> None:
        if bins < 1:
            raise ValueError("bins must be at least 1")
        self.bins = bins
        self.weights = [0.0] * bins
        self.score_sums = [0.0] * bins
        self.label_sums = [0.0] * bins
        self.log_loss_sums = [0.0] * bins

    def add(self, score: float, label: float, weight: float = 1.0) -> None:
        """One labelled prediction; ``score`` is clipped to [0, 1], ``label`` must be in it."""
        index, weighted_score, weighted_label, weighted_loss = self.contribution(
            score, label, weight
        )
        self.weights[index] += weight
        self.score_sums[index] += weighted_score
        self.label_sums[index] += weighted_label
        self.log_loss_sums[index] += weighted_loss

    def contribution(
        self, score: float, label: float, weight: float = 1.0
    ) -> tuple[int, float, float, float]:
        """What :meth:`add` adds: the bin, then the weighted score, label and log loss
        (added to the bin's sums in order, these give the same sums bit for bit)."""
        if math.isnan(score):
            raise ValueError("score is NaN")
        if not 0 <= label <= 1:
            raise ValueError(f"label must be in [0, 1], got {label}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ValueError("weight must be finite and non-negative")
        score = min(max(score, 0.0), 1.0)
        index = min(int(score * self.bins), self.bins - 1)
        clipped = min(max(score, LOG_LOSS_CLIP), 1 - LOG_LOSS_CLIP)
        loss = -(label * math.log(clipped) + (1 - label) * math.log(1 - clipped))
        return index, weight * score, weight * label, weight * loss

    def merge(self, other: ReliabilityBins) -> None:
        """Add ``other``'s sums to these (in place); the number of bins must be equal."""
        if other.bins != self.bins:
            raise ValueError(f"cannot merge {other.bins} bins into {self.bins}")
        for field in _FIELDS:
            mine, theirs = getattr(self, field), getattr(other, field)
            setattr(self, field, [a + b for a, b in zip(mine, theirs, strict=True)])

    @property
    def count(self) -> float:
        """The total weight (the number of predictions when every weight is 1)."""
        return float(sum(self.weights))

    def ece(self) -> float:
        """Expected calibration error ``sum_b (n_b / N) |mean label_b - mean score_b|``.

        0.0 when empty.
        """
        total = self.count
        if total <= 0:
            return 0.0
        gaps = (
            abs(labels - scores)
            for labels, scores in zip(self.label_sums, self.score_sums, strict=True)
        )
        return float(sum(gaps)) / total

    def mean_residual(self) -> float:
        """Mean of ``label - score``: positive when the model under-predicts. 0.0 when empty."""
        total = self.count
        if total <= 0:
            return 0.0
        return (sum(self.label_sums) - sum(self.score_sums)) / total

    def log_loss(self) -> float:
        """Mean log loss, scores clipped to [1e-15, 1 - 1e-15]. 0.0 when empty."""
        total = self.count
        if total <= 0:
            return 0.0
        return float(sum(self.log_loss_sums)) / total

    def rows(self) -> list[tuple[float, float, float]]:
        """``(mean score, mean label, count)`` of each non-empty bin, in score order."""
        return [
            (scores / weight, labels / weight, weight)
            for weight, scores, labels in zip(
                self.weights, self.score_sums, self.label_sums, strict=True
            )
            if weight > 0
        ]

    def to_json(self) -> dict[str, Any]:
        return {"bins": self.bins, **{field: list(getattr(self, field)) for field in _FIELDS}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReliabilityBins:
        reliability = cls(int(data["bins"]))
        for field in _FIELDS:
            values = [float(value) for value in data[field]]
            if len(values) != reliability.bins:
                raise ValueError(f"{field}: expected {reliability.bins} values, got {len(values)}")
            setattr(reliability, field, values)
        return reliability

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReliabilityBins):
            return NotImplemented
        return self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"ReliabilityBins({self.to_json()!r})"
