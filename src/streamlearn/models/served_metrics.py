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

from collections import OrderedDict
from typing import Any

from river import metrics as river_metrics

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
