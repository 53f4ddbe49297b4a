"""The promotion gate of a spec (``ModelSpec.promotion_margin``): which published versions
should serve. The learner decides at each snapshot and writes the decision into the
snapshot's ``metrics`` (``promoted`` 1 or 0, with the figures it was decided on);
prediction workers serve the newest promoted version (:mod:`streamlearn.serving.models`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from streamlearn.models.specs import ModelSpec


class PromotionGate:
    """Held-out log loss of the version being trained against the promoted one, over the
    same last ``window`` examples since the promotion (the trainee scores each before it
    learns it, and the promoted model never learns: held out for both)."""

    def __init__(self, margin: float, window: int) -> None:
        self.margin = margin
        self.serving: Any = None
        """The promoted model (None before the first promotion: the first is promoted)."""
        self._losses: deque[tuple[float, float]] = deque(maxlen=window)

    def observe(self, spec: ModelSpec, x: Any, truth: bool, score: float) -> None:
        if self.serving is not None:
            served = spec.predict(self.serving, x)
            self._losses.append((_log_loss(truth, score), _log_loss(truth, served)))

    def decide(self) -> tuple[bool, dict[str, float]]:
        """(promote?, the figures it is decided on). The first version is promoted; later
        ones need a full window of examples since the last promotion (held back until
        then: ``gate_examples`` says how many there were)."""
        losses = self._losses
        if self.serving is None:
            return True, {}
        if len(losses) < (losses.maxlen or 1):
            return False, {"gate_examples": float(len(losses))}
        candidate = sum(c for c, _ in losses) / len(losses)
        serving = sum(s for _, s in losses) / len(losses)
        figures = {
            "gate_examples": float(len(losses)),
            "gate_log_loss": candidate,
            "gate_promoted_log_loss": serving,
            "gate_margin": self.margin,
        }
        return candidate <= serving + self.margin, figures

    def promote(self, model: Any) -> None:
        self.serving = model
        self._losses.clear()


def _log_loss(truth: bool, score: float) -> float:
    p = min(max(score, 1e-15), 1 - 1e-15)
    return -math.log(p if truth else 1 - p)
