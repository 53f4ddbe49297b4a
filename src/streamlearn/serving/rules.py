"""Business rules on scores: clamp, threshold, and a cap on positive decisions per window.

A model's :class:`~streamlearn.models.BusinessRules` say how a raw score becomes what the
worker answers. The cap bounds actions: at most ``positive_cap_per_window`` positive
decisions per ``cap_window_s`` (tumbling windows on the wall clock, aligned to the epoch),
*per worker process* — a fleet of N replicas acts at most N times the cap, so set the cap to
the budget divided by the replicas. Once a window's budget is spent, positive decisions
become the fallback decision (``fallback_decision``, else the negative one) until the next
window, and the first capped decision of a window reports ``cap_reached`` so the caller
raises one alert and counts it.
"""

from __future__ import annotations

from typing import NamedTuple

from streamlearn.models import BusinessRules


class Decision(NamedTuple):
    """What the rules made of a score (a named tuple: made once per prediction, and a
    third of the cost of a frozen dataclass)."""

    score: float
    decision: str | None
    capped: bool = False
    cap_reached: bool = False
    """True on the first capped decision of a window (alert once per window)."""


class ActionCap:
    """Positive decisions of one model in the current window."""

    __slots__ = ("count", "window")

    def __init__(self) -> None:
        self.window = -1
        self.count = 0


class RuleEngine:
    """Applies each model's rules; keeps one :class:`ActionCap` per served model name."""

    def __init__(self) -> None:
        self._caps: dict[str, ActionCap] = {}

    def decide(self, model_name: str, rules: BusinessRules, raw: float, now_s: float) -> Decision:
        score = rules.clamp(raw)
        if rules.threshold is None:
            return Decision(score, None)
        if score < rules.threshold:
            return Decision(score, rules.negative_decision)
        limit = rules.positive_cap_per_window
        if limit is None:
            return Decision(score, rules.positive_decision)
        cap = self.cap(model_name, rules.cap_window_s, now_s)
        if cap.count < limit:
            cap.count += 1
            return Decision(score, rules.positive_decision)
        cap.count += 1
        fallback = rules.fallback_decision or rules.negative_decision
        return Decision(score, fallback, capped=True, cap_reached=cap.count == limit + 1)

    def cap(self, model_name: str, window_s: float, now_s: float) -> ActionCap:
        """The cap of ``model_name`` in the window of ``now_s`` (the count restarts with
        every window). The predictor applies a request's decisions to it directly, as
        :meth:`decide` does, with everything but the count looked up once per request."""
        cap = self._caps.get(model_name)
        if cap is None:
            cap = self._caps[model_name] = ActionCap()
        window = int(now_s // window_s)
        if window != cap.window:
            cap.window, cap.count = window, 0
        return cap

    def used(self, model_name: str) -> int:
        """Positive decisions counted in the current window (capped ones included)."""
        cap = self._caps.get(model_name)
        return 0 if cap is None else cap.count


def fallback(rules: BusinessRules) -> Decision:
    """What a worker answers without a usable model (never counted against the cap)."""
    return Decision(rules.clamp(rules.fallback_score), rules.fallback_decision)
