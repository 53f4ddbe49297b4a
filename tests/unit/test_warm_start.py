"""Warm start: a learner with no snapshot of its own starts from the baseline its spec names
(trained on the history under a shadow name), verified before anything is unpickled, and
goes on online from the baseline's offsets, publishing its first version at once."""

from __future__ import annotations

from dataclasses import replace

import pytest

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS
from streamlearn.models.configured import configured_specs
from streamlearn.models.exceptions import SnapshotRejected
from streamlearn.models.online import OnlineLearner
from streamlearn.simulate.lab_baseline import history_baseline
from streamlearn.simulate.learning_lab import LearningLab, learning_config, learning_settings
from tests.unit.test_learning import KEY, T0, examples, in_process_payload, positioned

WARM = replace(SPECS["ctr"], warm_start="ctr@history")


def _baseline(cut: int, records: list[tuple[dict, str, int, int]]) -> dict:  # type: ignore[type-arg]
    """What ``replay model ctr --shadow history`` makes of the first ``cut``."""
    history = OnlineLearner(SPECS["ctr"], signing_key=KEY, model_name="ctr@history")
    history.learn_many(records[:cut])
    return history.snapshot(T0)


def test_a_warm_start_goes_on_from_the_baselines_model_and_offsets() -> None:
    records = positioned(examples(600, seed=3))
    learner = OnlineLearner(WARM, signing_key=KEY)
    learner.warm_start(_baseline(400, records))
    assert learner.trained_examples == 400
    assert learner.warm_from == "ctr@history v1"
    assert learner.snapshot_due(0.0)  # published at once: workers serve the baseline
    first = learner.snapshot(T0)
    assert (first["model_name"], first["version"], first["parent_version"]) == ("ctr", 1, None)
    assert not learner.snapshot_due(1.0)
    # Everything is delivered; what the baseline learned is skipped by offset.
    assert learner.learn_many(records) == 200
    assert learner.counters.replayed == 400
    # Byte for byte the model that learned the whole stream once.
    assert learner.snapshot(T0)["payload"] == in_process_payload("ctr", [r for r, *_ in records])


def test_an_unverified_baseline_is_never_loaded() -> None:
    records = positioned(examples(50, seed=3))
    baseline = _baseline(50, records)
    baseline["payload"] = baseline["payload"][:-1] + b"\x00"
    learner = OnlineLearner(WARM, signing_key=KEY)
    with pytest.raises(SnapshotRejected):
        learner.warm_start(baseline)
    assert (learner.trained_examples, learner.next_offsets, learner.warm_from) == (0, {}, None)
    # Nor a baseline of another spec (another estimator: its payload means something else).
    tree = OnlineLearner(SPECS["ctr_tree"], signing_key=KEY, model_name="ctr_tree@history")
    tree.learn_many(records)
    with pytest.raises(SnapshotRejected):
        learner.warm_start(tree.snapshot(T0))


def test_the_learner_agent_warm_starts_from_model_state_and_serves_the_baseline_at_once() -> None:
    settings = learning_settings(models=["ctr"])
    history = LearningLab(learning_config(0, rate=10.0), settings=settings)
    history.run(40)
    baseline = history_baseline(history, "ctr")
    specs = {"ctr": replace(history.specs["ctr"], warm_start="ctr@history")}
    world = learning_config(1, rate=10.0)
    fresh = LearningLab(world, settings=settings, specs=specs, baselines=[baseline])
    cold = LearningLab(world, settings=settings)
    for lab in (fresh, cold):
        lab.run(12)
    # The warm learner published v1 (the baseline) within its first second; the cold one
    # only after its first examples and its cadence.
    assert fresh.published["ctr"][0] == (1.0, 1)
    assert cold.published["ctr"][0][0] > 10
    decoded = fresh.cluster.decoded("model.state")
    first = next(s for s in decoded if s["model_name"] == "ctr")
    assert bytes(first["payload"]) == bytes(baseline["payload"])
    assert first["trained_examples"] >= baseline["trained_examples"]


def test_the_settings_name_a_models_baseline() -> None:
    settings = learning_settings(model_warm_start={"ctr": "ctr@history"})
    specs = configured_specs(settings)
    assert specs["ctr"].warm_start == "ctr@history"
    assert specs["ctr_tree"].warm_start is None
    # The description (what workers compare) does not change with it.
    assert specs["ctr"].description == configured_specs(learning_settings())["ctr"].description
    for wrong in ("ctr", "ctr_tree@history"):
        with pytest.raises(ConfigurationError, match="model_warm_start"):
            configured_specs(learning_settings(model_warm_start={"ctr": wrong}))


@pytest.mark.parametrize("wrong", ["ctr@history ", "ctr@his tory", "ctr@history~newest"])
def test_a_baseline_no_replay_can_publish_is_refused(wrong: str) -> None:
    """Found by a new user: `{"ctr": "ctr@history "}` (a space from a settings file) was
    taken, and every learner start looked for it, found nothing and started cold with a
    warning. `replay model --shadow` publishes only names of letters, digits, '.', '_' and
    '-' (what an experiment arm names), so such a baseline can never exist."""
    with pytest.raises(ConfigurationError, match="letters, digits"):
        configured_specs(learning_settings(model_warm_start={"ctr": wrong}))


def test_a_warm_start_for_a_model_not_configured_is_refused() -> None:
    """A misspelt model name (`ctrr`) was taken by every part without a word."""
    settings = learning_settings(models=["ctr"], model_warm_start={"ctrr": "ctrr@history"})
    with pytest.raises(ConfigurationError, match="'ctrr' is not a configured model"):
        configured_specs(settings)


def test_a_model_whose_baseline_is_missing_starts_cold_and_is_counted() -> None:
    """It started cold with a warning line only: nothing a dashboard or alert could see."""
    settings = learning_settings(models=["ctr"])
    specs = {"ctr": replace(configured_specs(settings)["ctr"], warm_start="ctr@nothere")}
    lab = LearningLab(learning_config(1, rate=10.0), settings=settings, specs=specs)
    lab.run(12)
    counted = lab.metrics.registry.get_sample_value(
        "streamlearn_learner_cold_starts_total", {"model": "ctr", "reason": "no_baseline"}
    )
    assert counted is not None
    assert counted >= 1
