"""Business rules: clamping, thresholds, the positive-decision cap per window, fallbacks."""

from __future__ import annotations

import pytest

from streamlearn.models import BusinessRules
from streamlearn.serving.rules import RuleEngine, fallback

RULES = BusinessRules(
    clamp_min=0.01,
    clamp_max=0.9,
    threshold=0.5,
    positive_cap_per_window=3,
    cap_window_s=10.0,
    fallback_score=0.02,
    fallback_decision="hold",
)


@pytest.mark.parametrize(
    ("raw", "score", "decision"),
    [(-1.0, 0.01, "skip"), (0.2, 0.2, "skip"), (0.5, 0.5, "show"), (7.0, 0.9, "show")],
)
def test_clamp_then_threshold(raw: float, score: float, decision: str) -> None:
    result = RuleEngine().decide("m", RULES, raw, 100.0)
    assert (result.score, result.decision, result.capped) == (score, decision, False)


def test_no_threshold_means_no_decision() -> None:
    result = RuleEngine().decide("m", BusinessRules(clamp_max=10.0), 12.0, 0.0)
    assert (result.score, result.decision) == (10.0, None)


def test_cap_switches_to_the_fallback_decision_and_reports_once_per_window() -> None:
    engine = RuleEngine()
    window = [engine.decide("m", RULES, 0.8, 100.0 + i * 0.1) for i in range(6)]
    assert [d.decision for d in window] == ["show"] * 3 + ["hold"] * 3
    assert [d.capped for d in window] == [False] * 3 + [True] * 3
    assert [d.cap_reached for d in window] == [False, False, False, True, False, False]
    assert engine.used("m") == 6
    # Negative decisions are never capped.
    assert engine.decide("m", RULES, 0.1, 101.0).decision == "skip"
    # Another model has its own budget.
    assert engine.decide("other", RULES, 0.8, 101.0).decision == "show"
    # The next window (epoch-aligned, 110 s) starts a fresh budget.
    nxt = [engine.decide("m", RULES, 0.8, 110.0) for _ in range(4)]
    assert [d.decision for d in nxt] == ["show"] * 3 + ["hold"]
    assert nxt[-1].cap_reached


def test_cap_without_fallback_decision_uses_the_negative_one() -> None:
    rules = BusinessRules(threshold=0.1, positive_cap_per_window=1, negative_decision="no")
    engine = RuleEngine()
    assert [engine.decide("m", rules, 0.5, 0.0).decision for _ in range(2)] == ["show", "no"]


def test_fallback_is_clamped_and_not_counted() -> None:
    engine = RuleEngine()
    assert fallback(RULES).score == 0.02
    assert fallback(RULES).decision == "hold"
    assert fallback(BusinessRules(clamp_min=0.5, fallback_score=0.0)).score == 0.5
    assert engine.used("m") == 0
