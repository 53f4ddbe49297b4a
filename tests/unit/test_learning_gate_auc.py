"""The candidate judge's AUC criterion (``promotion_auc_margin``): a candidate is promoted
only if it also ranks the window's held-out examples about as well as the promoted model."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, cast

import pytest

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS
from streamlearn.models.promotion import Candidate, CandidateGate
from streamlearn.models.specs import ModelSpec
from streamlearn.models.synthetic import exact_auc
from streamlearn.settings_loading import load_settings


class _Scoring:
    """What the gate asks of a spec: a model's score for an input (here: the model is
    a function of the input)."""

    def predict(self, model: Any, x: Any) -> float:
        return float(model(x))


def _ranks_well_badly_calibrated(p: float) -> float:
    """Orders the examples as the truth does, with scores far too sure of themselves."""
    return 0.98 if p > 0.5 else 0.02


def _calibrated_on_average_ranks_badly(p: float) -> float:
    """Near the base rate whatever the input, in the reverse order of the truth."""
    return 0.45 - 0.05 * p


def _world(n: int, seed: int = 3) -> list[tuple[float, bool]]:
    rng = random.Random(seed)
    probabilities = [rng.uniform(0.05, 0.95) for _ in range(n)]
    return [(p, rng.random() < p) for p in probabilities]


def _judged(auc_margin: float | None) -> tuple[bool, dict[str, float]]:
    gate = CandidateGate(0.0, 400, auc_margin=auc_margin)
    gate.promote(_ranks_well_badly_calibrated, 5000)
    gate.cut(Candidate(b"", 6000, {}, _calibrated_on_average_ranks_badly))
    spec = cast(ModelSpec, _Scoring())
    for p, truth in _world(400):
        gate.observe(spec, p, truth, 0.5)
    return gate.decide()


def test_a_candidate_with_the_lower_log_loss_that_ranks_worse_is_held_back() -> None:
    promoted, figures = _judged(auc_margin=None)
    # Log loss alone prefers the candidate: the promoted model's sure mistakes cost more.
    assert figures["gate_log_loss"] < figures["gate_promoted_log_loss"]
    assert promoted
    assert "gate_auc" not in figures
    held, figures = _judged(auc_margin=0.01)
    assert not held
    assert figures["gate_auc"] < 0.5 < figures["gate_promoted_auc"]
    assert figures["gate_auc_margin"] == 0.01
    # The figures are the exact AUCs of the window's scores.
    world = _world(400)
    labels = [truth for _, truth in world]
    mine = [_calibrated_on_average_ranks_badly(p) for p, _ in world]
    assert figures["gate_auc"] == exact_auc(labels, mine)


def test_the_auc_criterion_does_not_promote_a_candidate_log_loss_holds_back() -> None:
    gate = CandidateGate(0.0, 400, auc_margin=1.0)
    gate.promote(_calibrated_on_average_ranks_badly, 5000)
    gate.cut(Candidate(b"", 6000, {}, _ranks_well_badly_calibrated))
    spec = cast(ModelSpec, _Scoring())
    for p, truth in _world(400):
        gate.observe(spec, p, truth, 0.5)
    promoted, figures = gate.decide()
    assert figures["gate_auc"] > figures["gate_promoted_auc"]
    assert figures["gate_log_loss"] > figures["gate_promoted_log_loss"]
    assert not promoted


def test_a_window_of_one_class_is_judged_by_log_loss_alone() -> None:
    gate = CandidateGate(0.0, 50, auc_margin=0.0)
    gate.promote(_ranks_well_badly_calibrated, 5000)
    gate.cut(Candidate(b"", 6000, {}, _calibrated_on_average_ranks_badly))
    spec = cast(ModelSpec, _Scoring())
    for p in (0.2, 0.4, 0.6, 0.8) * 10:
        gate.observe(spec, p, False, 0.5)
    promoted, figures = gate.decide()
    assert promoted == (figures["gate_log_loss"] <= figures["gate_promoted_log_loss"])
    assert "gate_auc" not in figures


def test_a_new_cut_starts_the_auc_window_anew() -> None:
    gate = CandidateGate(0.0, 400, auc_margin=0.0)
    gate.promote(_ranks_well_badly_calibrated, 5000)
    spec = cast(ModelSpec, _Scoring())
    gate.cut(Candidate(b"", 6000, {}, _calibrated_on_average_ranks_badly))
    for p, truth in _world(400, seed=4):
        gate.observe(spec, p, truth, 0.5)
    gate.cut(Candidate(b"", 7000, {}, _ranks_well_badly_calibrated))
    for p, truth in _world(400, seed=5):
        gate.observe(spec, p, truth, 0.5)
    _, figures = gate.decide()
    assert figures["gate_examples"] == 400.0
    assert figures["gate_auc"] == figures["gate_promoted_auc"]  # the same model, judged alone


def test_an_auc_margin_needs_the_candidate_judge() -> None:
    with pytest.raises(ConfigurationError, match="AUC margin"):
        replace(SPECS["ctr"], promotion_margin=0.0, promotion_auc_margin=0.0)
    with pytest.raises(ConfigurationError, match="AUC margin"):
        replace(SPECS["ctr"], promotion_judge="candidate", promotion_auc_margin=0.0)
    with pytest.raises(ConfigurationError, match=r"promotion_auc_margin 1\.5 must be from -1 to 1"):
        replace(
            SPECS["ctr"], promotion_margin=0.0, promotion_judge="candidate",
            promotion_auc_margin=1.5,
        )  # fmt: skip
    with pytest.raises(ConfigurationError, match="auc_margin needs judge"):
        load_settings(models=["ctr"], model_promotion={"ctr": {"margin": 0, "auc_margin": 0}})
    from streamlearn.models.configured import configured_specs

    # Negative: the candidate must rank better than the promoted version by that much.
    for margin in (0.002, -0.003):
        gate = {"ctr": {"margin": 0, "judge": "candidate", "auc_margin": margin}}
        settings = load_settings(models=["ctr"], model_promotion=gate)
        assert configured_specs(settings)["ctr"].promotion_auc_margin == margin


def test_a_learner_publishes_the_aucs_its_candidates_were_judged_on_the_same_every_run() -> None:
    from datetime import UTC, datetime

    from streamlearn.models.online import OnlineLearner
    from tests.unit.test_learning import KEY, examples, positioned

    spec = replace(
        SPECS["ctr"], promotion_margin=0.0, promotion_window=300,
        promotion_judge="candidate", promotion_auc_margin=0.0,
    )  # fmt: skip
    stream = positioned(examples(2400, seed=11))
    runs = []
    for _ in range(2):
        learner, published = OnlineLearner(spec, signing_key=KEY), []
        for start in range(0, 2400, 300):
            learner.learn_many(stream[start : start + 300])
            snapshot = learner.snapshot(datetime(2026, 12, 6, tzinfo=UTC))
            if snapshot is not None:
                published.append(snapshot)
        runs.append(published)
    judged = [s["metrics"] for s in runs[0] if "gate_auc" in s["metrics"]]
    assert len(judged) >= 3
    for figures in judged:
        ranks_as_well = figures["gate_auc"] >= figures["gate_promoted_auc"]
        calibrated = figures["gate_log_loss"] <= figures["gate_promoted_log_loss"]
        assert figures["promoted"] == float(ranks_as_well and calibrated)
    assert runs[0] == runs[1]
