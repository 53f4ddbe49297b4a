"""The promotion gate of a spec (``ModelSpec.promotion_margin``): which published versions
should serve. The learner decides at each snapshot and writes the decision into the
snapshot's ``metrics`` (``promoted`` 1 or 0, with the figures it was decided on);
prediction workers serve the newest promoted version (:mod:`streamlearn.serving.models`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from streamlearn.models.specs import ModelSpec


class _Gate:
    """What both judges share: the promoted model and whether it is still young."""

    def __init__(self, margin: float, after_examples: int) -> None:
        self.margin = margin
        self.serving: Any = None
        """The promoted model (None before the first promotion: the first is promoted)."""
        self.after_examples = after_examples
        self.promoted_examples = 0
        """Examples the promoted model has learned."""

    @property
    def young(self) -> bool:
        """Nothing promoted yet, or a promoted model that has learned fewer than
        ``after_examples``: every version is promoted as it is cut (and the candidate
        judge cuts no candidate; see
        :attr:`~streamlearn.models.specs.ModelSpec.promotion_after_examples`)."""
        return self.serving is None or self.promoted_examples < self.after_examples

    def promote(self, model: Any, trained_examples: int) -> None:
        self.serving, self.promoted_examples = model, trained_examples


class PromotionGate(_Gate):
    """Held-out log loss of the version being trained against the promoted one, over the
    same last ``window`` examples since the promotion (the trainee scores each before it
    learns it, and the promoted model never learns: held out for both)."""

    def __init__(self, margin: float, window: int, after_examples: int = 0) -> None:
        super().__init__(margin, after_examples)
        self._losses: deque[tuple[float, float]] = deque(maxlen=window)

    def observe(self, spec: ModelSpec, x: Any, truth: bool, score: float) -> None:
        # Young, each snapshot promotes the trainee and clears the losses: none are needed.
        if not self.young:
            served = spec.predict(self.serving, x)
            self._losses.append((_log_loss(truth, score), _log_loss(truth, served)))

    def decide(self) -> tuple[bool, dict[str, float]]:
        """(promote?, the figures it is decided on). The first version is promoted; later
        ones need a full window of examples since the last promotion (held back until
        then: ``gate_examples`` says how many there were)."""
        losses = self._losses
        if self.young:
            return True, {}
        if len(losses) < (losses.maxlen or 1):
            return False, {"gate_examples": float(len(losses))}
        return _verdict(losses, self.margin)

    def promote(self, model: Any, trained_examples: int) -> None:
        super().promote(model, trained_examples)
        self._losses.clear()


def _verdict(
    losses: Collection[tuple[float, float]], margin: float
) -> tuple[bool, dict[str, float]]:
    """Promote when the mean held-out log loss of the judged model (first of each pair)
    is at most the promoted one's (second) plus ``margin``; with the figures."""
    candidate = sum(c for c, _ in losses) / len(losses)
    serving = sum(s for _, s in losses) / len(losses)
    figures = {
        "gate_examples": float(len(losses)),
        "gate_log_loss": candidate,
        "gate_promoted_log_loss": serving,
        "gate_margin": margin,
    }
    return candidate <= serving + margin, figures


def _log_loss(truth: bool, score: float) -> float:
    p = min(max(score, 1e-15), 1 - 1e-15)
    return -math.log(p if truth else 1 - p)


@dataclass(frozen=True)
class Candidate:
    """A version cut from the trainee, waiting for its verdict: what its snapshot will
    record (its own pickle, examples and offsets at the cut) and a frozen copy to judge."""

    payload: bytes
    trained_examples: int
    offsets: dict[tuple[str, int], int]
    model: Any


class CandidateGate(_Gate):
    """Judges each candidate itself (``ModelSpec.promotion_judge`` "candidate"): cut from
    the trainee at one snapshot, frozen, and scored beside the promoted model on the
    examples that arrive after the cut (held out for both, paired); published with its
    verdict once it has ``window`` of them. So a published version lags the trainee by
    that window, and a version cut just after a split is judged on its own record, not on
    the trainee's (which :class:`PromotionGate` judges)."""

    def __init__(self, margin: float, window: int, after_examples: int = 0) -> None:
        super().__init__(margin, after_examples)
        self.window = window
        self.pending: Candidate | None = None
        self._losses: list[tuple[float, float]] = []

    def observe(self, spec: ModelSpec, x: Any, truth: bool, score: float) -> None:
        """One example after the cut (``score``, the trainee's, is not the candidate's)."""
        if self.pending is not None and self.serving is not None:
            mine = spec.predict(self.pending.model, x)
            served = spec.predict(self.serving, x)
            self._losses.append((_log_loss(truth, mine), _log_loss(truth, served)))

    @property
    def waiting(self) -> bool:
        """A candidate is cut and has fewer than ``window`` held-out examples."""
        return self.pending is not None and len(self._losses) < self.window

    def cut(self, candidate: Candidate) -> None:
        self.pending = candidate
        self._losses.clear()

    def drop(self) -> None:
        """Forget the pending candidate (it cannot be published: too large) and its
        losses, so nothing is judged or kept until the next cut."""
        self.pending = None
        self._losses.clear()

    def decide(self) -> tuple[bool, dict[str, float]]:
        """(promote the pending candidate?, the figures it is decided on); the first
        version (nothing promoted yet) is promoted."""
        losses = self._losses
        if self.young:
            return True, {}
        if not losses:
            return False, {"gate_examples": 0.0}
        return _verdict(losses, self.margin)
