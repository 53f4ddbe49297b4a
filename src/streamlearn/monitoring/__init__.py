"""The statistics the monitor agent computes: data drift and calibration, no Kafka.

Drift is measured against a fixed reference: :mod:`~streamlearn.monitoring.sketches`
bins a reference window once (quantile edges, top categories) and counts later windows
into the same bins; :mod:`~streamlearn.monitoring.drift` compares the two (PSI,
Jensen-Shannon, normed Wasserstein); :mod:`~streamlearn.monitoring.thresholds` sets each
alert threshold for a target false-alarm rate at the window's size, instead of one fixed
number for windows of any size. :mod:`~streamlearn.monitoring.calibration` tells whether
served scores behave like probabilities.

Everything here is pure and deterministic, and every piece of state is plain JSON that
round-trips exactly, because the monitor keeps it in changelog-backed state stores.
"""

from __future__ import annotations

from streamlearn.monitoring.calibration import ReliabilityBins
from streamlearn.monitoring.drift import (
    DEFAULT_THRESHOLDS,
    batch_statistics,
    exceeded,
    jensen_shannon,
    normed_wasserstein,
    psi,
    statistic_names,
    statistics,
)
from streamlearn.monitoring.sketches import (
    OTHER,
    CategoricalHistogram,
    Histogram,
    NumericHistogram,
    histogram_from_json,
)
from streamlearn.monitoring.thresholds import drift_thresholds, rate_threshold

__all__ = [
    "DEFAULT_THRESHOLDS",
    "OTHER",
    "CategoricalHistogram",
    "Histogram",
    "NumericHistogram",
    "ReliabilityBins",
    "batch_statistics",
    "drift_thresholds",
    "exceeded",
    "histogram_from_json",
    "jensen_shannon",
    "normed_wasserstein",
    "psi",
    "rate_threshold",
    "statistic_names",
    "statistics",
]
