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

import numpy as np
from river import metrics as river_metrics

from streamlearn.models.synthetic import exact_auc
from streamlearn.models.threshold_auc import ThresholdAuc
from streamlearn.monitoring.calibration import ReliabilityBins

KEPT_VERSIONS = 50


class ServedAuc:
    """Weighted mean of per-version ROC AUC of served scores (last ``KEPT_VERSIONS``).

    Asked for at every snapshot, while most kept versions no longer serve: each version's
    AUC is kept until that version's next example."""

    def __init__(self) -> None:
        self._by_version: OrderedDict[int, _VersionAuc] = OrderedDict()
        self.examples = 0

    def update(self, version: int, truth: bool | float, score: float, weight: float) -> None:
        positive = bool(truth)
        entry = self._by_version.get(version)
        if entry is None:
            entry = self._by_version[version] = _VersionAuc()
            while len(self._by_version) > KEPT_VERSIONS:
                self._by_version.popitem(last=False)
        entry.auc.update(positive, score, weight)
        entry.counts[int(positive)] += 1
        entry.value = None
        self.examples += 1

    def get(self) -> float | None:
        total = weighted = 0.0
        for entry in self._by_version.values():
            negatives, positives = entry.counts
            if negatives and positives:
                if entry.value is None:
                    entry.value = float(entry.auc.get())
                weighted += entry.value * (negatives + positives)
                total += negatives + positives
        return weighted / total if total else None


class _VersionAuc:
    """One version's ROC AUC (River's figure), its [negatives, positives] and its AUC when asked
    (None: changed since)."""

    __slots__ = ("auc", "counts", "value")

    def __init__(self) -> None:
        self.auc = ThresholdAuc()  # River's ROCAUC figure, faster
        self.counts = [0, 0]
        self.value: float | None = None


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

    The figures are asked for at every snapshot (twice: its metrics and the metrics
    record), over the whole window. So each row keeps what it adds to the bins, computed
    once when it arrives, in columns (numpy rings), and the figures add those up in the
    window's order (the same sums, bit for bit, as adding the rows to the bins one by
    one), and are kept until the next row. A version's exact AUC is kept too, for as long
    as its rows in the window are the same: between two snapshots only the newest versions
    gain rows and the oldest lose some, so most of the ~20 versions of a window are not
    ranked again.
    """

    def __init__(self, size: int = RECENT_EXAMPLES) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._count = 0
        self._next = 0
        """Where the next row goes: once the window is full, its oldest row."""
        self._versions = np.zeros(size, dtype=np.int64)
        self._serials = np.zeros(size, dtype=np.int64)
        """Each row's place in the stream (0 for the first row ever)."""
        self._written = 0
        # (version, serial of its first row in the window, of its last) → its exact AUC:
        # the window holds every row between those two, so the key fixes the rows.
        self._version_aucs: dict[tuple[int, int, int], float] = {}
        self._positives = np.zeros(size, dtype=bool)
        self._scores = np.zeros(size)
        # What each row adds to its reliability bin (ReliabilityBins.contribution).
        self._bins = np.zeros(size, dtype=np.intp)
        self._weights = np.zeros(size)
        self._scored = np.zeros(size)
        self._labelled = np.zeros(size)
        self._losses = np.zeros(size)
        self._reliability = ReliabilityBins()
        """Only for :meth:`ReliabilityBins.contribution` (never added to)."""
        self._figures: dict[str, float] | None = None

    def update(self, version: int, truth: bool | float, score: float, weight: float) -> None:
        positive = bool(truth)
        at = self._next
        (
            self._bins[at],
            self._scored[at],
            self._labelled[at],
            self._losses[at],
        ) = self._reliability.contribution(score, positive, weight)
        self._versions[at] = version
        self._serials[at] = self._written
        self._written += 1
        self._positives[at] = positive
        self._scores[at] = score
        self._weights[at] = weight
        self._next = (at + 1) % self._size
        self._count = min(self._count + 1, self._size)
        self._figures = None

    def figures(self) -> dict[str, float]:
        """``recent_served_auc`` (when some version's examples hold both classes),
        ``recent_ece`` and ``recent_examples``; empty before the first example."""
        if self._figures is None:
            self._figures = self._window_figures()
        return dict(self._figures)

    def _window(self, column: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """``column``'s rows of the window, oldest first."""
        if self._count < self._size:
            return column[: self._count]
        return np.concatenate((column[self._next :], column[: self._next]))

    def _window_figures(self) -> dict[str, float]:
        if not self._count:
            return {}
        window = self._window
        bins, count = window(self._bins), self._reliability.bins
        reliability = ReliabilityBins(count)
        # bincount adds each bin's values in the order given, as ReliabilityBins.add does.
        reliability.weights = np.bincount(bins, window(self._weights), count).tolist()
        reliability.score_sums = np.bincount(bins, window(self._scored), count).tolist()
        reliability.label_sums = np.bincount(bins, window(self._labelled), count).tolist()
        reliability.log_loss_sums = np.bincount(bins, window(self._losses), count).tolist()
        versions, serials, positives, scores = (
            window(self._versions),
            window(self._serials),
            window(self._positives),
            window(self._scores),
        )
        total = weighted = 0.0
        known, kept = self._version_aucs, {}
        distinct, first = np.unique(versions, return_index=True)
        for version in distinct[np.argsort(first)]:  # in order of first appearance
            chosen = versions == version
            examples = int(chosen.sum())
            if 0 < int(positives[chosen].sum()) < examples:
                rows = serials[chosen]
                key = (int(version), int(rows[0]), int(rows[-1]))
                auc = known.get(key)
                if auc is None:
                    auc = exact_auc(positives[chosen], scores[chosen])
                kept[key] = auc
                weighted += auc * examples
                total += examples
        self._version_aucs = kept
        figures = {"recent_ece": reliability.ece(), "recent_examples": float(self._count)}
        if total:
            figures["recent_served_auc"] = weighted / total
        return figures
