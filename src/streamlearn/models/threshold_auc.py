"""River's ``metrics.ROCAUC`` figure from four sums per threshold instead of a confusion
matrix per threshold.

The learner updates two ROC AUCs per example (its prequential one, and the served one of
the version that answered), and River's updates a ``ConfusionMatrix`` per threshold: ten
method calls, each adding the weight to five dict entries. ``get`` reads only four numbers
per threshold (the true-positive cell, the positive row's and the positive column's sums
and the diagonal's), so :class:`ThresholdAuc` keeps exactly those, each receiving the same
weights in the same order as River's, and ends with River's own ``trapezoid``: the same
figure to the last bit (``tests/unit/test_threshold_auc.py`` compares them), in a fifth of
the time.
"""

from __future__ import annotations

from typing import Any

from river import metrics as river_metrics
from river.metrics import roc_auc as river_roc_auc

# The very function River's ROCAUC.get() calls (scipy's trapezoid, as River imports it).
_trapezoid: Any = river_roc_auc.integrate.trapezoid  # type: ignore[attr-defined]


class ThresholdAuc:
    """``river.metrics.ROCAUC(n_thresholds)`` with ``pos_val=True``: ``update`` and ``get``."""

    __slots__ = ("_classes", "_column", "_diagonal", "_row", "_thresholds", "_true_positives")

    def __init__(self, n_thresholds: int = 10) -> None:
        river: Any = river_metrics.ROCAUC(n_thresholds)  # type: ignore[no-untyped-call]
        self._thresholds: tuple[float, ...] = tuple(river.thresholds)  # River's own doubles
        n = len(self._thresholds)
        # Per threshold, as River's matrix keeps them: data[True][True], sum_row[True],
        # sum_col[True] and the total of the diagonal (true positives of both classes).
        self._true_positives = [0.0] * n
        self._row = [0.0] * n
        self._column = [0.0] * n
        self._diagonal = [0.0] * n
        self._classes = 0
        """Bit 0: a negative was counted, bit 1: a positive."""

    def update(self, y_true: Any, y_pred: Any, w: float = 1.0) -> None:
        p_true = y_pred.get(True, 0.0) if isinstance(y_pred, dict) else y_pred
        if y_true == True:  # noqa: E712 (River's test: y_true == pos_val, 1.0 included)
            self._classes |= 2
            true_positives, row, column, diagonal = (
                self._true_positives, self._row, self._column, self._diagonal,
            )  # fmt: skip
            for i, threshold in enumerate(self._thresholds):
                row[i] += w
                if p_true > threshold:
                    true_positives[i] += w
                    column[i] += w
                    diagonal[i] += w
        else:
            self._classes |= 1
            column, diagonal = self._column, self._diagonal
            for i, threshold in enumerate(self._thresholds):
                if p_true > threshold:
                    column[i] += w
                else:
                    diagonal[i] += w

    def has_both_classes(self) -> bool:
        """Whether a positive and a negative were both counted: with one class only,
        River's figure is 0.0, which says nothing about ranking."""
        return self._classes == 3

    def get(self) -> float:
        tprs: list[float] = []
        fprs: list[float] = []
        for tp, row, column, diagonal in zip(
            self._true_positives, self._row, self._column, self._diagonal, strict=True
        ):
            tn = diagonal - tp
            fp = column - tp
            fn = row - tp
            tprs.append(_safe_div(tp, tp + fn))
            fprs.append(_safe_div(fp, fp + tn))
        return float(-_trapezoid(x=fprs, y=tprs))


def _safe_div(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        return 0.0
