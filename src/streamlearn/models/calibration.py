"""Online recalibration of a binary classifier's probabilities (histogram binning).

A model can rank well and still say the wrong probabilities: naive Bayes leaves (the
``ctr_tree`` spec's Hoeffding tree) count dependent features as independent evidence and
push their scores towards 0 and 1, so a "0.4" there is not clicked four times in ten.
Histogram binning (Zadrozny & Elkan, 2001) learns what each score means from the outcomes
of the examples that got it: the wrapped model's probability is put in one of ``bins``
equal-width bins on the logit scale between ``low`` and ``high``, and each bin keeps the
(weighted) count of examples and of positives that scored there. The counts are taken
*before* the wrapped model learns each example, so they measure its scores on examples it
had not seen, which is what serving gives it.

The calibrated probability interpolates linearly between the rates of the two bins whose
centres surround the score (continuous in the score, so near-ties stay near-ties), each
rate shrunk towards the raw score by ``prior`` pseudo-examples: ``(positives + prior * p)
/ (count + prior)``. With no evidence that is the raw score itself; as a bin fills, its
observed rate takes over. Everything is plain floats in lists: deterministic, and pickled
in the allow-listed form snapshots need (models/safe_pickle.py).

With ``platt_memory``, a logistic map ``sigmoid(a * logit(q) + b)`` (Platt scaling) is put
on top of the histogram's probability ``q``, learned from the same out-of-sample outcomes
(``q`` before the bins count the example) by one Newton step per example, on a Hessian that
forgets ``1 / platt_memory`` of itself per example. The bins keep every example they saw
and so lag behind a wrapped model whose scores change meaning as it grows (a tree's
splits); two parameters that forget follow that drift at little variance (docs/learning.md).

A learner scores each example just before it learns it (prequential metrics): the raw
score of that last prediction is kept, with a copy of its input and the wrapped model
that gave it, and reused when an equal input is learned next by the same model, instead
of asking it again (for the tree, a third of the cost of an example). The wrapped model
changes only in :meth:`learn_one`, which forgets the kept score, so a reused score is
exactly the one the model would give. It is not part of the model's state: snapshots
pickle the same bytes whether or not a prediction came last.
"""

from __future__ import annotations

import math
from typing import Any

from river import base
from river.base.typing import ClfTarget

from streamlearn.models.binary_wrapper import BinaryWrapper

MIN_SLOPE = 0.05
"""The Platt map's least slope on the logit scale."""


class HistogramCalibrated(BinaryWrapper):
    """``classifier`` with its probability of ``True`` recalibrated (module docstring)."""

    _scored: tuple[dict[Any, Any], float, base.Classifier] | None = None
    """The last prediction's input (a copy), raw score and the wrapped model that gave it."""

    platt_memory: float | None = None
    """Examples the Platt map on top remembers (None: no map; snapshots from before it)."""

    def __init__(
        self,
        classifier: base.Classifier,
        bins: int = 64,
        low: float = -8.0,
        high: float = 8.0,
        prior: float = 20.0,
        platt_memory: float | None = None,
    ) -> None:
        if bins < 2 or not low < high or not prior > 0:
            raise ValueError("HistogramCalibrated needs bins >= 2, low < high and prior > 0")
        if platt_memory is not None and not platt_memory > 1:
            raise ValueError("HistogramCalibrated needs platt_memory > 1 (or None)")
        self.classifier = classifier
        self.bins = bins
        self.low = low
        self.high = high
        self.prior = prior
        self._counts = [0.0] * bins
        self._positives = [0.0] * bins
        self.platt_memory = platt_memory
        if platt_memory is not None:
            self._platt = [1.0, 0.0]  # a, b: the identity map to start with
            # (a, a), (a, b), (b, b): ``prior`` pseudo-examples at logit ±1 behind the
            # identity, so the first outcomes move the map by steps, not leaps.
            self._hessian = [prior, 0.0, prior]

    def _position(self, p: float) -> float:
        """Where ``p``'s logit falls, in bin widths from ``low`` (clamped to the range)."""
        if 0.0 < p < 1.0:
            z = min(max(math.log(p / (1.0 - p)), self.low), self.high)
        else:  # 0, 1, or not a number (which the calibrated score then is too)
            z = self.high if p >= 1.0 else self.low
        return (z - self.low) / (self.high - self.low) * self.bins

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_scored", None)  # the last prediction is not the model's state
        return state

    def _raw(self, x: dict[Any, Any]) -> float:
        return float(self.classifier.predict_proba_one(x).get(True, 0.0))

    def _rate(self, index: int, p: float) -> float:
        return (self._positives[index] + self.prior * p) / (self._counts[index] + self.prior)

    def calibrated(self, p: float) -> float:
        """The calibrated probability of a raw score ``p``."""
        q = self._binned(p)
        return q if self.platt_memory is None else self._mapped(q)

    @staticmethod
    def _logit(q: float) -> float:
        if 0.0 < q < 1.0:
            return min(max(math.log(q / (1.0 - q)), -15.0), 15.0)
        return 15.0 if q >= 1.0 else -15.0

    def _mapped(self, q: float) -> float:
        """The Platt map of the histogram's probability ``q``."""
        return self._mapped_logit(self._logit(q))

    def _mapped_logit(self, z: float) -> float:
        """The Platt map of a probability whose (clamped) logit is ``z``."""
        a, b = self._platt
        t = a * z + b
        if t >= 0.0:
            return 1.0 / (1.0 + math.exp(-t))
        e = math.exp(t)
        return e / (1.0 + e)

    def _learn_map(self, q: float, positive: float, w: float) -> None:
        """One Newton step of the Platt map's log loss at ``q`` with outcome ``positive``."""
        assert self.platt_memory is not None
        z = self._logit(q)
        mapped = self._mapped_logit(z)  # the logit once per example
        g = w * (mapped - positive)
        v = w * max(mapped * (1.0 - mapped), 1e-6)
        h = self._hessian
        keep = 1.0 - 1.0 / self.platt_memory
        h[0] = h[0] * keep + v * z * z
        h[1] = h[1] * keep + v * z
        h[2] = h[2] * keep + v
        det = h[0] * h[2] - h[1] * h[1]
        if not det > 1e-12:
            # Scores that all sat at one logit for a long time (the prior forgotten): no
            # direction to tell the two parameters apart; a step would be unbounded.
            return
        # The slope stays positive: the map then keeps the histogram's order. A full step
        # from a weak start (a fresh tree's first click, one heavily weighted example) set
        # it to -14, and the first versions served scores that fell as the model's rose.
        self._platt[0] = max(self._platt[0] - (h[2] * g * z - h[1] * g) / det, MIN_SLOPE)
        self._platt[1] -= (h[0] * g - h[1] * g * z) / det

    def _binned(self, p: float) -> float:
        """The histogram's probability of a raw score ``p``."""
        # Bin i's centre is at position i + 0.5: interpolate between the two around p.
        centre = self._position(p) - 0.5
        left = math.floor(centre)
        fraction = centre - left
        last = self.bins - 1
        below = self._rate(min(max(left, 0), last), p)
        above = self._rate(min(max(left + 1, 0), last), p)
        return (1.0 - fraction) * below + fraction * above

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[ClfTarget, float]:
        raw = self._raw(x)
        self._scored = (dict(x), raw, self.classifier)
        calibrated = self.calibrated(raw)
        return {False: 1.0 - calibrated, True: calibrated}

    def learn_one(self, x: dict[Any, Any], y: Any, w: float = 1.0, **kwargs: Any) -> None:
        scored = self._scored
        if scored is not None and scored[2] is self.classifier and scored[0] == x:
            raw = scored[1]
        else:
            raw = self._raw(x)
        self._scored = None  # the wrapped model changes below
        positive = y is True or y == 1
        if self.platt_memory is not None:
            self._learn_map(self._binned(raw), 1.0 if positive else 0.0, w)
        index = min(int(self._position(raw)), self.bins - 1)
        self._counts[index] += w
        if positive:
            self._positives[index] += w
        self._learn_wrapped(x, y, w, **kwargs)
