"""Alert thresholds set for a target false-alarm rate, computed once per reference.

A fixed threshold (PSI > 0.1, say) means different things for different windows: a
window of 50 records drifts by that much from sampling noise alone, one of 50,000 almost
never does. So the thresholds here come from the question the alert really asks, "is
this window unlikely to have been drawn from the reference?": with no drift, a window of
``window`` records is a multinomial draw from the reference's proportions, so we simulate
many such windows, compute each statistic for each, and set the threshold at the
``1 - false_alarm_rate`` quantile. A window with no drift then alerts at about that rate.
The reference being a sample too, each simulated window is drawn from proportions that
are themselves a resample of the reference (its counts give its size).

Evidently's usual thresholds stay as floors: on large windows the simulated quantile gets
tiny, and a statistically real but practically negligible change should not page anyone.

Shares (a field's null rate, the share of events filtered as bots) get the same treatment
exactly: :func:`rate_threshold` is the upper quantile of the window's count given the
reference's (beta-binomial).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from streamlearn.monitoring.drift import DEFAULT_THRESHOLDS, batch_statistics
from streamlearn.monitoring.sketches import Histogram


def _check_rate(false_alarm_rate: float) -> None:
    if not 0 < false_alarm_rate < 1:
        raise ValueError("false_alarm_rate must be in (0, 1)")


def drift_thresholds(
    reference: Histogram,
    window: int,
    *,
    false_alarm_rate: float = 1e-3,
    draws: int = 20_000,
    seed: int = 0,
    floors: Mapping[str, float] = DEFAULT_THRESHOLDS,
) -> dict[str, float]:
    """Per statistic, the value a no-drift window of ``window`` records exceeds with
    probability ``false_alarm_rate``, but at least its floor.

    Simulated: ``draws`` windows drawn from the reference's proportions (a seeded
    generator, so the same inputs always give the same thresholds). The keys are those of
    :func:`~streamlearn.monitoring.drift.statistics` for this kind of histogram; a
    statistic missing from ``floors`` has no floor.
    """
    _check_rate(false_alarm_rate)
    if window < 1:
        raise ValueError("window must be at least 1 record")
    if draws < 1:
        raise ValueError("draws must be at least 1")
    counts = np.asarray(reference.counts, dtype=float)
    if counts.sum() <= 0:
        raise ValueError("the reference histogram is empty")
    rng = np.random.default_rng(seed)
    # The reference is itself a sample: the proportions a no-drift window is drawn from
    # are the reference's give or take its own sampling noise (a parametric bootstrap),
    # or the thresholds would be too low for references of a few hundred records.
    total = round(counts.sum())
    truths = rng.multinomial(total, counts / counts.sum(), size=draws) / total
    samples = rng.multinomial(window, truths)
    values = batch_statistics(reference, samples)
    return {
        name: max(float(np.quantile(array, 1 - false_alarm_rate)), float(floors.get(name, 0.0)))
        for name, array in values.items()
    }


def rate_threshold(
    reference_rate: float,
    reference_n: float,
    window_n: float,
    *,
    false_alarm_rate: float = 1e-3,
    min_margin: float = 0.05,
) -> float:
    """Upper alert threshold for a share seen in a window of ``window_n`` records.

    The share a no-drift window exceeds with probability at most ``false_alarm_rate``:
    the window's count is beta-binomial, binomial around the reference's share with that
    share's own uncertainty (a Jeffreys posterior of the reference's hits), and the
    threshold is its ``1 - false_alarm_rate`` quantile over the window. At least
    ``reference_rate + min_margin``, at most 1. The normal approximation used before is
    far off in the upper tail when few hits are expected: a window of 3 over a reference
    share of 0.02 crossed it 5.9 % of the time against a target of 0.1 %.
    """
    _check_rate(false_alarm_rate)
    if not 0 <= reference_rate <= 1:
        raise ValueError("reference_rate must be in [0, 1]")
    if not reference_n >= 1:
        raise ValueError("reference_n must be at least 1")
    if not window_n > 0:
        raise ValueError("window_n must be positive")
    window = max(1, round(window_n))
    hits = reference_rate * reference_n
    count = _beta_binomial_quantile(
        window, hits + 0.5, reference_n - hits + 0.5, 1 - false_alarm_rate
    )
    return min(1.0, max(count / window, reference_rate + min_margin))


def _beta_binomial_quantile(window: int, a: float, b: float, level: float) -> int:
    """The smallest count ``q`` with ``P(X <= q) >= level``, ``X`` beta-binomial of
    ``window`` draws with parameters ``a`` and ``b``: walked up with the ratio of
    successive probabilities, in logs (single terms underflow for large windows), from
    12 standard deviations below the mean (the mass under it is below 1e-30: a bucket of
    a million events walked a million steps)."""
    mean = window * a / (a + b)
    spread = math.sqrt(window * a * b * (a + b + window) / ((a + b) ** 2 * (a + b + 1)))
    start = max(0, math.floor(mean - 12 * spread))
    log_pmf = (
        math.lgamma(window + 1) - math.lgamma(start + 1) - math.lgamma(window - start + 1)
        + math.lgamma(start + a) + math.lgamma(window - start + b) - math.lgamma(window + a + b)
        + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    )  # fmt: skip
    cumulative = 0.0
    for k in range(start, window):
        cumulative += math.exp(log_pmf)
        if cumulative >= level:
            return k
        log_pmf += math.log((window - k) * (k + a)) - math.log((k + 1) * (window - k - 1 + b))
    return window
