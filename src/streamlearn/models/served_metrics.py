"""How good the scores users actually got were, judged per model version that served them.

Pooling every served score into one AUC mixes model versions of different calibration:
early versions, trained while positives arrive before negatives (a click is known in
seconds, a non-click only after the label horizon), score everything high; later ones
score lower. Pooled, that swing swamps the ranking (measured in ``up --simulate``: pooled
0.45 while each settled version ranked at 0.75-0.82). So the AUC is computed within each
serving version and averaged, weighted by examples, over the versions whose examples hold
both classes (the newest versions' negatives are still inside the label horizon).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

from river import metrics as river_metrics

from streamlearn.models.synthetic import exact_auc
from streamlearn.monitoring.calibration import ReliabilityBins

KEPT_VERSIONS = 50


class ServedAuc:
    """Weighted mean of per-version ROC AUC of served scores (last ``KEPT_VERSIONS``)."""

    def __init__(self) -> None:
        self._by_version: OrderedDict[int, tuple[Any, list[int]]] = OrderedDict()
        self.examples = 0

    def update(self, version: int, truth: bool | float, score: float, weight: float) -> None:
        positive = bool(truth)
        entry = self._by_version.get(version)
        if entry is None:
            entry = (river_metrics.ROCAUC(), [0, 0])  # type: ignore[no-untyped-call]
            self._by_version[version] = entry
            while len(self._by_version) > KEPT_VERSIONS:
                self._by_version.popitem(last=False)
        entry[0].update(positive, score, weight)
        entry[1][int(positive)] += 1
        self.examples += 1

    def get(self) -> float | None:
        total = weighted = 0.0
        for auc, (negatives, positives) in self._by_version.values():
            if negatives and positives:
                weighted += float(auc.get()) * (negatives + positives)
                total += negatives + positives
        return weighted / total if total else None


class ServedMae:
    """Mean absolute error of served values (errors of different versions pool fine)."""

    def __init__(self) -> None:
        self._mae: Any = river_metrics.MAE()  # type: ignore[no-untyped-call]
        self.examples = 0

    def update(self, version: int, truth: bool | float, score: float, weight: float) -> None:
        self._mae.update(truth, score, weight)
        self.examples += 1

    def get(self) -> float | None:
        return float(self._mae.get()) if self.examples else None


RECENT_EXAMPLES = 5000
"""The window of :class:`RecentServed`: about three minutes of one model's examples at the
simulator's default rate, enough for a served AUC to ±0.01 and ten reliability bins."""


class RecentServed:
    """Served AUC and calibration over the last ``size`` served examples only.

    :class:`ServedAuc` averages since the start (its last ``KEPT_VERSIONS`` versions), so
    the warm-up weighs on it for minutes; this one says how good the scores users get
    *now* are. The AUC is exact (ranks, ties half) within each serving version and
    averaged weighted by examples, as the learning lab judges; the ECE comes from the
    reliability bins the monitor uses (10 equal-width bins).
    """

    def __init__(self, size: int = RECENT_EXAMPLES) -> None:
        self._rows: deque[tuple[int, bool, float, float]] = deque(maxlen=size)

    def update(self, version: int, truth: bool | float, score: float, weight: float) -> None:
        self._rows.append((version, bool(truth), score, weight))

    def figures(self) -> dict[str, float]:
        """``recent_served_auc`` (when some version's examples hold both classes),
        ``recent_ece`` and ``recent_examples``; empty before the first example."""
        if not self._rows:
            return {}
        bins = ReliabilityBins()
        by_version: dict[int, tuple[list[bool], list[float]]] = {}
        for version, truth, score, weight in self._rows:
            bins.add(score, float(truth), weight)
            labels, scores = by_version.setdefault(version, ([], []))
            labels.append(truth)
            scores.append(score)
        total = weighted = 0.0
        for labels, scores in by_version.values():
            if any(labels) and not all(labels):
                weighted += exact_auc(labels, scores) * len(labels)
                total += len(labels)
        figures = {"recent_ece": bins.ece(), "recent_examples": float(len(self._rows))}
        if total:
            figures["recent_served_auc"] = weighted / total
        return figures
