"""How far a window's distribution has moved from the reference's, bin by bin.

Three statistics over the same fixed bins (:mod:`streamlearn.monitoring.sketches`), the
ones Evidently uses by default, so their usual thresholds mean what people expect:

- the population stability index (PSI): symmetric, sensitive to small bins gaining or
  losing mass (each proportion is clipped below at ``epsilon`` so an empty bin is finite);
- the Jensen-Shannon distance: bounded (``[0, sqrt(ln 2)]``), defined with empty bins;
- the normed Wasserstein distance (numeric features only): how far mass moved along the
  axis, in reference standard deviations, so a shift of the whole distribution counts
  more than a reshuffle between neighbouring bins.

Inputs are count vectors; each is normalised here, so a window of 200 records compares to
a reference of a million. Every statistic is computed by one vectorised function over a
batch of windows: :mod:`streamlearn.monitoring.thresholds` runs it over thousands of
simulated windows, and the monitor's single window goes through the same code, so its
value and its threshold can never disagree on a definition.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from streamlearn.monitoring.sketches import CategoricalHistogram, Histogram, NumericHistogram

Floats = npt.NDArray[np.float64]

DEFAULT_THRESHOLDS: dict[str, float] = {"psi": 0.1, "jensen_shannon": 0.1, "wasserstein": 0.1}
"""Evidently's default thresholds; used as floors below the false-alarm thresholds."""

PSI_EPSILON = 1e-4


def _proportions(counts: Sequence[float] | Floats) -> Floats:
    """Counts (one vector, or one row per window) as proportions; each row must have mass."""
    array = np.asarray(counts, dtype=float)
    if array.ndim not in (1, 2) or array.shape[-1] == 0:
        raise ValueError("expected a non-empty count vector")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError("counts must be finite and non-negative")
    totals = array.sum(axis=-1, keepdims=True)
    if (totals <= 0).any():
        raise ValueError("counts must not all be zero")
    return np.asarray(array / totals, dtype=float)


def _pair(reference: Sequence[float], current: Sequence[float]) -> tuple[Floats, Floats]:
    if len(reference) != len(current):
        raise ValueError(f"{len(reference)} reference bins but {len(current)} current bins")
    return _proportions(reference), _proportions(current)[np.newaxis, :]


def _psi(reference: Floats, currents: Floats, epsilon: float) -> Floats:
    r = np.maximum(reference, epsilon)
    c = np.maximum(currents, epsilon)
    return np.asarray(((c - r) * np.log(c / r)).sum(axis=1), dtype=float)


def _kl_to(proportions: Floats, middle: Floats) -> Floats:
    """Kullback-Leibler divergence of each row from ``middle`` (0 log 0 = 0)."""
    ratio = np.divide(
        proportions,
        middle,
        out=np.ones(middle.shape),
        where=np.broadcast_to(proportions > 0, middle.shape),
    )
    return np.asarray((proportions * np.log(ratio)).sum(axis=1), dtype=float)


def _jensen_shannon(reference: Floats, currents: Floats) -> Floats:
    middle = (reference + currents) / 2
    divergence = (_kl_to(reference, middle) + _kl_to(currents, middle)) / 2
    return np.asarray(np.sqrt(np.maximum(divergence, 0.0)), dtype=float)


SAFE_POSITION = 2.0**500
"""Bin centres beyond this are scaled down before the distance: their gaps and squares
overflowed to inf (centres near the largest double, from a record's feature values), and
the statistic and its thresholds were NaN. A power of two: the normed distance is a ratio,
and the scaling is exact."""


def _normed_wasserstein(reference: Floats, currents: Floats, centres: Floats) -> Floats:
    order = np.argsort(centres, kind="stable")
    positions, reference, currents = centres[order], reference[order], currents[:, order]
    largest = float(np.abs(positions).max())
    if largest > SAFE_POSITION:
        positions = np.ldexp(positions, -math.frexp(largest)[1])
    gaps = np.diff(positions)
    cdf_gaps = np.abs(np.cumsum(currents - reference, axis=1)[:, :-1])
    distance = cdf_gaps @ gaps
    mean = float(reference @ positions)
    std = float(np.sqrt(reference @ (positions - mean) ** 2))
    return np.asarray(distance / (std if std > 0 else 1.0), dtype=float)


def psi(
    reference: Sequence[float], current: Sequence[float], epsilon: float = PSI_EPSILON
) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over the two proportions.

    Each proportion is clipped below at ``epsilon`` (as Evidently does) so an empty bin
    gives a large but finite term. 0 for identical distributions; symmetric.
    """
    r, c = _pair(reference, current)
    return float(_psi(r, c, epsilon)[0])


def jensen_shannon(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance (the square root of the divergence, natural log).

    The same as ``scipy.spatial.distance.jensenshannon`` and Evidently's default; in
    ``[0, sqrt(ln 2)]``, symmetric, 0 for identical distributions.
    """
    r, c = _pair(reference, current)
    return float(_jensen_shannon(r, c)[0])


def normed_wasserstein(
    reference: Sequence[float], current: Sequence[float], centres: Sequence[float]
) -> float:
    """Wasserstein-1 distance of the binned distributions placed at ``centres``, normed.

    Divided by the reference's standard deviation at those centres (Evidently's "normed
    Wasserstein"), or by 1 when that is 0, so the value reads "moved by so many standard
    deviations" whatever the feature's unit.
    """
    r, c = _pair(reference, current)
    positions = np.asarray(centres, dtype=float)
    if positions.shape != r.shape or not np.isfinite(positions).all():
        raise ValueError("expected one finite centre per bin")
    return float(_normed_wasserstein(r, c, positions)[0])


def statistic_names(reference: Histogram) -> tuple[str, ...]:
    """The statistics :func:`statistics` computes for this kind of histogram, in order."""
    if isinstance(reference, NumericHistogram):
        return ("psi", "jensen_shannon", "wasserstein")
    return ("psi", "jensen_shannon")


def batch_statistics(reference: Histogram, current_counts: npt.ArrayLike) -> dict[str, Floats]:
    """Every statistic of the reference against each row of ``current_counts`` (one window
    per row, in the reference's bins), as one array per statistic."""
    counts = np.asarray(current_counts, dtype=float)
    if counts.ndim != 2 or counts.shape[1] != len(reference.counts):
        raise ValueError(f"expected rows of {len(reference.counts)} counts")
    r, c = _proportions(reference.counts), _proportions(counts)
    values = {"psi": _psi(r, c, PSI_EPSILON), "jensen_shannon": _jensen_shannon(r, c)}
    if isinstance(reference, NumericHistogram):
        centres = np.asarray(reference.centres(), dtype=float)
        values["wasserstein"] = _normed_wasserstein(r, c, centres)
    return values


def _check_same_bins(reference: Histogram, current: Histogram) -> None:
    if isinstance(reference, NumericHistogram) and isinstance(current, NumericHistogram):
        if reference.edges != current.edges:
            raise ValueError("the histograms' edges differ")
    elif isinstance(reference, CategoricalHistogram) and isinstance(current, CategoricalHistogram):
        if reference.categories != current.categories:
            raise ValueError("the histograms' categories differ")
    else:
        raise ValueError("cannot compare a numeric histogram with a categorical one")


def statistics(reference: Histogram, current: Histogram) -> dict[str, float]:
    """The drift statistics of ``current`` against ``reference`` (same bins).

    Numeric: ``psi``, ``jensen_shannon`` and ``wasserstein``; categorical: ``psi`` and
    ``jensen_shannon`` (categories have no order, so no distance along an axis).
    """
    _check_same_bins(reference, current)
    values = batch_statistics(reference, [current.counts])
    return {name: float(array[0]) for name, array in values.items()}


def exceeded(values: Mapping[str, float], thresholds: Mapping[str, float]) -> list[str]:
    """The statistics whose value is above its threshold (those without one never are)."""
    return [
        name for name, value in values.items() if name in thresholds and value > thresholds[name]
    ]
