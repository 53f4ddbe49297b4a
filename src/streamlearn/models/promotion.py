"""The promotion gate of a spec (``ModelSpec.promotion_margin``): which published versions
should serve. The learner decides at each snapshot and writes the decision into the
snapshot's ``metrics`` (``promoted`` 1 or 0, with the figures it was decided on);
prediction workers serve the newest promoted version (:mod:`streamlearn.serving.models`).

What a gate holds beyond the promoted model (which ``model.state`` keeps) is written into
each snapshot as its :meth:`~PromotionGate.state` after that snapshot's decision, so a
learner that resumes from the snapshot decides the next versions as one that ran through
(:mod:`streamlearn.models.gate_state` seals it): the held-out losses of a held-back
version's window, or where the candidate judge cut its next candidate.
"""

from __future__ import annotations

import base64
import itertools
import math
import struct
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from streamlearn.models.specs import ModelSpec
from streamlearn.models.synthetic import exact_auc


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


_PAIR = struct.Struct("<dd")
"""A pair of held-out losses in a state: two little-endian doubles (exact)."""


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

    @property
    def held_out(self) -> int:
        """Pairs of held-out losses in the window now."""
        return len(self._losses)

    def state(self, promoting: bool = False) -> dict[str, Any] | None:
        """What a learner resuming after this snapshot needs to decide as this one will:
        the window of losses (kept when the version is held back; ``promoting`` clears
        it), None when there is none."""
        if promoting or not self._losses:
            return None
        losses = self._losses
        packed = struct.pack(f"<{2 * len(losses)}d", *itertools.chain.from_iterable(losses))
        return {"judge": "trainee", "losses": base64.b64encode(packed).decode("ascii")}

    def restore(self, state: Any) -> None:
        """Take back the window of a :meth:`state` (its newest ``window`` pairs, should
        the window be smaller now); :class:`ValueError` for one this gate cannot use."""
        if not isinstance(state, dict) or state.get("judge") != "trainee":
            raise ValueError("not a state of the trainee judge")
        packed = base64.b64decode(str(state["losses"]), validate=True)
        if len(packed) % _PAIR.size:
            raise ValueError(f"{len(packed)} bytes of losses are not whole pairs")
        pairs: list[tuple[float, float]] = list(_PAIR.iter_unpack(packed))
        if not all(math.isfinite(c) and math.isfinite(s) for c, s in pairs):
            raise ValueError("a loss is not a finite number")
        self._losses.clear()
        self._losses.extend(pairs)


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
    return log_loss_passes(candidate, serving, margin), figures


def log_loss_passes(candidate: float, promoted: float, margin: float) -> bool:
    """The gate's log-loss test: the judged version's held-out log loss is at most the
    promoted one's plus ``margin`` (what the held-back alert reports as failed, too)."""
    return candidate <= promoted + margin


def auc_passes(candidate: float, promoted: float, margin: float) -> bool:
    """The candidate judge's ranking test: its held-out AUC is at least the promoted
    one's less ``margin``."""
    return candidate >= promoted - margin


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
    the trainee's (which :class:`PromotionGate` judges).

    With ``auc_margin`` the candidate must also rank the window's examples about as well as
    the promoted model: its AUC there at least the promoted one's less ``auc_margin``
    (paired, on the same examples). Log loss alone lets through a version that is better
    calibrated and ranks worse, and ranking is what a served list is judged by."""

    def __init__(
        self,
        margin: float,
        window: int,
        after_examples: int = 0,
        auc_margin: float | None = None,
    ) -> None:
        super().__init__(margin, after_examples)
        self.window = window
        self.auc_margin = auc_margin
        self.pending: Candidate | None = None
        self.cut_at: int | None = None
        """After a resume: the trained-example count at which the learner that published
        the resumed version cut the candidate after it (the learner cuts there again)."""
        self._losses: list[tuple[float, float]] = []
        self._scored: list[tuple[bool, float, float]] = []
        """With ``auc_margin``: (label, candidate's score, promoted one's) per example."""

    def observe(self, spec: ModelSpec, x: Any, truth: bool, score: float) -> None:
        """One example after the cut (``score``, the trainee's, is not the candidate's)."""
        if self.pending is not None and self.serving is not None:
            mine = spec.predict(self.pending.model, x)
            served = spec.predict(self.serving, x)
            self._losses.append((_log_loss(truth, mine), _log_loss(truth, served)))
            if self.auc_margin is not None:
                self._scored.append((truth, mine, served))

    @property
    def waiting(self) -> bool:
        """A candidate is cut and has fewer than ``window`` held-out examples."""
        return self.pending is not None and len(self._losses) < self.window

    def cut(self, candidate: Candidate) -> None:
        self.pending = candidate
        self.cut_at = None
        self._losses.clear()
        self._scored.clear()

    def state(self, promoting: bool = False) -> dict[str, Any] | None:
        """Where the next candidate is (or is to be) cut, by the trained-example count;
        None when none is. A resumed learner relearns from the published candidate's
        offsets and cuts there: the same candidate, judged on the same examples (its
        losses are scored again as they are relearned). ``promoting`` changes nothing."""
        cut = self.pending.trained_examples if self.pending is not None else self.cut_at
        return None if cut is None else {"judge": "candidate", "cut_at": cut}

    def restore(self, state: Any) -> None:
        """Take back a :meth:`state`: the learner cuts the next candidate at ``cut_at``;
        :class:`ValueError` for one this gate cannot use."""
        if not isinstance(state, dict) or state.get("judge") != "candidate":
            raise ValueError("not a state of the candidate judge")
        cut = state.get("cut_at")
        if not isinstance(cut, int) or isinstance(cut, bool) or cut < 0:
            raise ValueError(f"cut_at is {cut!r}, not a count of examples")
        self.pending, self.cut_at = None, cut

    def drop(self) -> None:
        """Forget the pending candidate (it cannot be published: too large) and its
        losses, so nothing is judged or kept until the next cut."""
        self.pending = self.cut_at = None
        self._losses.clear()
        self._scored.clear()

    def decide(self) -> tuple[bool, dict[str, float]]:
        """(promote the pending candidate?, the figures it is decided on); the first
        version (nothing promoted yet) is promoted."""
        losses = self._losses
        if self.young:
            return True, {}
        if not losses:
            return False, {"gate_examples": 0.0}
        promote, figures = _verdict(losses, self.margin)
        if self.auc_margin is not None:
            promote = _ranks_as_well(self._scored, self.auc_margin, figures) and promote
        return promote, figures


def _ranks_as_well(
    scored: list[tuple[bool, float, float]], margin: float, figures: dict[str, float]
) -> bool:
    """Whether the candidate's AUC over ``scored`` (label, candidate's score, promoted
    one's) is at least the promoted model's less ``margin``; both go into ``figures``. A
    window with one class only has no AUC: it does not hold the candidate back."""
    labels = [truth for truth, _, _ in scored]
    positives = sum(labels)
    if positives == 0 or positives == len(labels):
        return True
    candidate = exact_auc(labels, [mine for _, mine, _ in scored])
    serving = exact_auc(labels, [served for _, _, served in scored])
    figures.update(gate_auc=candidate, gate_promoted_auc=serving, gate_auc_margin=margin)
    return auc_passes(candidate, serving, margin)
