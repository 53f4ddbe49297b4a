"""A learner's figures since it started or resumed: prequential (each example scored by the
model being trained, just before it learns it) and served (the score the request got from
the version that answered it, judged per version: :mod:`.served_metrics`).

With delayed labels, prequential figures can run optimistic: a positive arrives seconds
after its prediction, a negative only after the label horizon, so a positive is scored right
after the model learned its neighbours (same user, same moment) and a negative much later
(measured: the Hoeffding tree's prequential AUC above the simulated truth's ceiling).
Served figures have no such leak: the score was fixed before any label existed.
"""

from __future__ import annotations

import math
from typing import Any

from river import metrics as river_metrics

from streamlearn.models.served_metrics import RecentServed, ServedAuc, ServedMae
from streamlearn.models.threshold_auc import ThresholdAuc


class PrequentialMetrics:
    """``auc``, ``log_loss`` and ``served_auc`` (and the recent served window's figures)
    for a binary model; ``mae``, ``rmse`` and ``served_mae`` for a regressor."""

    def __init__(self, binary: bool) -> None:
        self.evaluated = 0
        """Examples scored since this learner started or resumed."""
        if binary:
            self._first: Any = ThresholdAuc()  # River's ROCAUC figure, faster
            self._second: Any = river_metrics.LogLoss()  # type: ignore[no-untyped-call]
            self._served: ServedAuc | ServedMae = ServedAuc()
            self._recent: RecentServed | None = RecentServed()
            self._names = ("auc", "log_loss", "served_auc")
        else:
            self._first = river_metrics.MAE()  # type: ignore[no-untyped-call]
            self._second = river_metrics.RMSE()  # type: ignore[no-untyped-call]
            self._served = ServedMae()
            self._recent = None
            self._names = ("mae", "rmse", "served_mae")

    def update(
        self,
        truth: bool | float,
        score: float,
        weight: float,
        served_by: int | None,
        served: float | None,
    ) -> None:
        """One example: ``score`` the prequential one, ``served`` what version
        ``served_by`` answered (none for a fallback, version 0, or no score)."""
        self._first.update(truth, score, weight)
        self._second.update(truth, score, weight)
        self.evaluated += 1
        # What users got: the score a model (version ≥ 1, not a fallback) served.
        if served_by and served is not None and math.isfinite(served):
            self._served.update(served_by, truth, served, weight)
            if self._recent is not None:
                self._recent.update(served_by, truth, served, weight)

    def figures(self) -> dict[str, float]:
        """The figures so far (only ``evaluated_examples``, 0, before the first)."""
        if not self.evaluated:
            return {"evaluated_examples": 0.0}
        metrics = {
            self._names[0]: float(self._first.get()),
            self._names[1]: float(self._second.get()),
            "evaluated_examples": float(self.evaluated),
        }
        if isinstance(self._first, ThresholdAuc) and not self._first.has_both_classes():
            # No AUC from one class (positives come first under as_labelled): absent, as
            # the served AUC is, rather than River's 0.0.
            del metrics[self._names[0]]
        served = self._served.get()
        if served is not None:
            metrics[self._names[2]] = served
            metrics["served_examples"] = float(self._served.examples)
        if self._recent is not None:
            metrics.update(self._recent.figures())
        return metrics
