"""HistogramCalibrated: a binary classifier's probabilities recalibrated online."""

from __future__ import annotations

import math
import pickle
import random
from typing import Any

import pytest
from river import base, linear_model

from streamlearn.models.calibration import HistogramCalibrated
from streamlearn.models.checks import training_stream
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.specs import get_spec
from streamlearn.monitoring.calibration import ReliabilityBins

pytestmark = pytest.mark.unit


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


class Overconfident(base.Classifier):
    """Scores x["z"] three times too steeply (as naive Bayes does with dependent
    features); records what it was asked, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def predict_proba_one(self, x: dict[str, float], **kwargs: Any) -> dict[bool, float]:
        self.calls.append(("predict", x["z"]))
        p = _sigmoid(3.0 * x["z"])
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[str, float], y: bool, **kwargs: Any) -> None:
        self.calls.append(("learn", (x["z"], y, kwargs.get("w", 1.0))))


def _stream(count: int, seed: int) -> list[tuple[dict[str, float], bool, float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        z = rng.gauss(-1.0, 1.2)
        p = _sigmoid(z)
        out.append(({"z": z}, rng.random() < p, p))
    return out


def _judged(model: Any, stream: list[tuple[dict[str, float], bool, float]]) -> ReliabilityBins:
    bins = ReliabilityBins()
    for x, y, _ in stream:
        bins.add(model.predict_proba_one(x)[True], float(y))
    return bins


def test_an_overconfident_model_is_calibrated_by_what_it_has_seen() -> None:
    raw, calibrated = Overconfident(), HistogramCalibrated(Overconfident())
    for x, y, _ in _stream(40_000, seed=1):
        calibrated.learn_one(x, y)
    held_out = _stream(20_000, seed=2)
    truth = ReliabilityBins()
    for _, y, p in held_out:
        truth.add(p, float(y))
    before, after = _judged(raw, held_out), _judged(calibrated, held_out)
    assert before.ece() > 0.05
    assert after.ece() < 0.02
    assert after.log_loss() < before.log_loss()
    assert after.log_loss() < truth.log_loss() * 1.01


def test_a_model_that_has_seen_nothing_scores_as_the_wrapped_one() -> None:
    calibrated = HistogramCalibrated(Overconfident())
    for z in (-9.0, -2.0, 0.0, 0.4, 5.0):
        assert calibrated.predict_proba_one({"z": z})[True] == pytest.approx(_sigmoid(3 * z))


def test_evidence_is_counted_before_the_wrapped_model_learns_it_and_weights_pass_on() -> None:
    inner = Overconfident()
    calibrated = HistogramCalibrated(inner)
    calibrated.learn_one({"z": 0.5}, True)
    calibrated.learn_one({"z": 0.5}, False, w=3.0)
    assert inner.calls == [
        ("predict", 0.5),
        ("learn", (0.5, True, 1.0)),
        ("predict", 0.5),
        ("learn", (0.5, False, 3.0)),
    ]
    # One positive of weight 1 and a negative of weight 3 in the bin of p = sigmoid(1.5):
    # the rate there is pulled from p towards 1/4.
    p = _sigmoid(1.5)
    assert calibrated.predict_proba_one({"z": 0.5})[True] < p


def test_the_score_of_the_input_just_predicted_is_not_asked_for_again() -> None:
    pure = HistogramCalibrated(linear_model.LogisticRegression())
    before = dumps(pure)
    pure.predict_proba_one({"z": 0.5})
    assert dumps(pure) == before  # the kept score is not the model's state
    inner = Overconfident()
    calibrated = HistogramCalibrated(inner)
    calibrated.predict_proba_one({"z": 0.5})
    calibrated.learn_one({"z": 0.5}, True)  # an equal input (a pipeline builds a new dict)
    calibrated.learn_one({"z": 0.5}, True)  # the model has learned since: asked again
    calibrated.predict_proba_one({"z": 0.1})
    calibrated.learn_one({"z": 0.2}, False)  # another input: asked
    assert [call for call, _ in inner.calls] == [
        "predict", "learn", "predict", "learn", "predict", "predict", "learn",
    ]  # fmt: skip


def test_a_score_is_not_reused_for_an_input_changed_since_or_another_model() -> None:
    inner = Overconfident()
    calibrated = HistogramCalibrated(inner)
    x = {"z": 0.0}
    calibrated.predict_proba_one(x)
    x["z"] = 5.0  # the same dict, changed in place
    calibrated.learn_one(x, True)
    assert inner.calls[-2:] == [("predict", 5.0), ("learn", (5.0, True, 1.0))]
    calibrated.predict_proba_one({"z": 1.0})
    copy = calibrated.clone(include_attributes=True)  # a fresh wrapped model
    copy.learn_one({"z": 1.0}, True)
    assert copy.classifier.calls == [("predict", 1.0), ("learn", (1.0, True, 1.0))]


def test_a_score_that_is_not_a_number_is_learned_without_failing_and_served_as_one() -> None:
    class Broken(Overconfident):
        def predict_proba_one(self, x: dict[str, float], **kwargs: Any) -> dict[bool, float]:
            return {False: math.nan, True: math.nan}

    calibrated = HistogramCalibrated(Broken())
    calibrated.learn_one({"z": 0.0}, False)
    assert math.isnan(calibrated.predict_proba_one({"z": 0.0})[True])


def test_scores_are_continuous_across_bin_edges() -> None:
    calibrated = HistogramCalibrated(Overconfident())
    for x, y, _ in _stream(20_000, seed=3):
        calibrated.learn_one(x, y)
    width = (calibrated.high - calibrated.low) / calibrated.bins
    for edge in (calibrated.low + k * width for k in range(20, 44)):
        below = calibrated.predict_proba_one({"z": (edge - 1e-9) / 3})[True]
        above = calibrated.predict_proba_one({"z": (edge + 1e-9) / 3})[True]
        assert above == pytest.approx(below, abs=1e-6)


class Drifting(Overconfident):
    """Overconfident, and from ``shift_after`` examples learned on its scores mean a click
    rate 1.0 lower on the logit scale than before (a model whose scores change meaning)."""

    def __init__(self, shift_after: int) -> None:
        super().__init__()
        self.learned, self.shift_after = 0, shift_after

    def learn_one(self, x: dict[str, float], y: bool, **kwargs: Any) -> None:
        self.learned += 1

    def predict_proba_one(self, x: dict[str, float], **kwargs: Any) -> dict[bool, float]:
        shift = 1.0 if self.learned >= self.shift_after else 0.0
        p = _sigmoid(3.0 * (x["z"] + shift))
        return {False: 1.0 - p, True: p}


def test_the_platt_map_follows_scores_that_change_meaning_which_the_bins_lag() -> None:
    models = {
        memory: HistogramCalibrated(Drifting(shift_after=40_000), platt_memory=memory)
        for memory in (None, 3000.0)
    }
    for x, y, _ in _stream(50_000, seed=1):
        for model in models.values():
            model.learn_one(x, y)
    held_out = _stream(20_000, seed=2)
    bins_only, with_map = (_judged(models[m], held_out) for m in (None, 3000.0))
    assert bins_only.ece() > 0.03
    assert with_map.ece() < 0.02
    assert with_map.log_loss() < bins_only.log_loss()
    loaded = pickle.loads(pickle.dumps(models[3000.0]))  # the spec's: the test below
    assert loaded.predict_proba_one({"z": 0.3}) == models[3000.0].predict_proba_one({"z": 0.3})


def test_bad_parameters_are_refused() -> None:
    for kwargs in ({"bins": 1}, {"low": 2.0, "high": 1.0}, {"prior": 0.0}, {"platt_memory": 1.0}):
        with pytest.raises(ValueError, match="HistogramCalibrated needs"):
            HistogramCalibrated(Overconfident(), **kwargs)


def test_the_tree_spec_is_calibrated_and_its_snapshots_load_in_the_safe_unpickler() -> None:
    # Determinism, purity and resumption of every spec: test_models_specs (models/checks.py).
    spec = get_spec("ctr_tree")
    model = spec.new_model(0)
    stream = training_stream(spec, n=6000, seed=5)
    for x, label in stream:
        spec.learn(model, x, label)
    assert list(model.steps.values())[-1].classifier.classifier.n_nodes > 1  # it has split
    loaded = loads(dumps(model))
    assert isinstance(list(loaded.steps.values())[-1], HistogramCalibrated)
    assert [spec.predict(loaded, x) for x, _ in stream[:50]] == [
        spec.predict(model, x) for x, _ in stream[:50]
    ]


def test_a_learner_that_scores_before_learning_builds_the_same_bytes() -> None:
    spec = get_spec("ctr_tree")
    scored, unscored = spec.new_model(0), spec.new_model(0)
    for x, label in training_stream(spec, n=6000, seed=7):
        spec.predict(scored, x)  # as OnlineLearner does: its score is then reused
        spec.learn(scored, x, label)
        spec.learn(unscored, x, label)
    assert list(scored.steps.values())[-1].classifier.classifier.n_nodes > 1  # through splits
    assert dumps(scored) == dumps(unscored)


def test_the_platt_map_keeps_the_histograms_order_from_the_first_example() -> None:
    """A full Newton step from the identity set a fresh tree's map to a slope of -14 at its
    first click, and it swung between signs for ~500 examples: the first versions served
    scores that fell as the model's rose (held-out AUC 0.44 against the bins' 0.56, a
    review). One heavily weighted example did the same. The slope now stays positive."""
    spec = get_spec("ctr_tree")
    model = spec.new_model(0)
    calibrator = model.steps[list(model.steps)[-1]]
    assert isinstance(calibrator, HistogramCalibrated)
    assert calibrator.platt_memory is not None
    for i, (x, y) in enumerate(training_stream(spec, 600, seed=3)):
        spec.learn(model, x, y, 1000.0 if i == 50 else 1.0)
        assert calibrator._platt[0] > 0, i
