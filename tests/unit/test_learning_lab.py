"""The learning lab: the world served by the models its own learner publishes."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from streamlearn.models.configured import configured_specs
from streamlearn.simulate.lab_figures import reliability, served_auc
from streamlearn.simulate.learning_lab import (
    SETTLE_S,
    LearningLab,
    learning_config,
    learning_settings,
    steady_state,
)
from streamlearn.simulate.traffic import TrafficConfig

SECONDS = 60.0


@functools.cache
def _lab(seed: int = 1) -> LearningLab:
    # Small and fast: 20 page views a second, a snapshot every 5 s.
    lab = LearningLab(learning_config(seed, rate=20.0, users=300),
                      settings=learning_settings(snapshot_every_s=5))  # fmt: skip
    lab.run(SECONDS)
    return lab


def test_predictions_come_from_published_snapshots_once_published() -> None:
    lab = _lab()
    started = {
        (name, version): at_s for name, pubs in lab.published.items() for at_s, version in pubs
    }
    assert {name for name, _ in started} == {"ctr", "ctr_tree"}
    served = [r.value for r in lab.records(("telemetry.predictions",))]
    assert {p["model_name"] for p in served} == {"ctr", "ctr_tree"}
    first = {name: min(at for (n, _), at in started.items() if n == name) for name in lab.specs}
    for prediction in served:
        name, version = prediction["model_name"], prediction["model_version"]
        at_s = (prediction["served_ts"].timestamp() * 1000 - lab.start_ms) / 1000
        if version == 0:  # the fallback, only before the model's first snapshot
            assert prediction["degraded"]
            assert at_s < first[name] + 1
            assert prediction["score"] == lab.specs[name].rules.fallback_score
        else:  # never before the snapshot was published
            assert at_s >= started[(name, version)]
    assert max(p["model_version"] for p in served) >= 5


def test_the_learned_model_serves_better_than_chance_and_is_judged_against_the_truth() -> None:
    figures = steady_state(_lab(), last_s=30)
    for name, f in figures.items():
        assert f.impressions > 200, name
        assert f.served_auc is not None
        assert f.ceiling_auc is not None
        assert 0.6 < f.served_auc <= f.ceiling_auc + 0.05, name
        assert f.log_loss is not None
        assert f.truth_log_loss is not None
        assert f.ece is not None
        assert 0 <= f.ece < 0.5
        # The truth's own ECE on the same impressions: sampling noise, the floor of the goal.
        assert f.truth_ece is not None
        assert 0 < f.truth_ece < 0.1
        # Served in the last 30 s, their examples are not all learned yet (see below); the
        # learner's own figure covers what is.
        assert f.prequential_auc is None
        assert _lab().figures()[name].prequential_auc is not None
        assert f.versions >= 3


def test_calibration_is_also_judged_by_the_true_probabilities() -> None:
    """``ece_by_truth``: each judged impression's true click probability stands in for its
    sampled click, in the same bins of served scores (the same quantity, without the
    clicks' sampling noise: the truth's own is 0, where its ECE by clicks is not)."""
    lab = _lab()
    for name, f in steady_state(lab, last_s=30).items():
        rows = lab.judged(name)
        chosen = rows["at_s"] >= lab.elapsed_s - 30
        score, truth, label = rows["score"][chosen], rows["truth"][chosen], rows["label"][chosen]
        bins = np.minimum((score * 10).astype(int), 9)
        gaps = [abs(truth[bins == b].sum() - score[bins == b].sum()) for b in range(10)]
        assert f.ece_by_truth == pytest.approx(sum(gaps) / len(score), abs=1e-12), name
        ones = np.ones(len(truth))
        truth_by_truth, truth_by_clicks = (
            reliability(truth, truth, ones),
            reliability(truth, label, ones),
        )
        assert truth_by_truth is not None
        assert truth_by_clicks is not None
        assert truth_by_truth.ece() == 0.0
        assert truth_by_clicks.ece() == pytest.approx(f.truth_ece)
        assert truth_by_clicks.ece() > 0.0


def test_the_same_seed_gives_the_same_figures() -> None:
    again = LearningLab(learning_config(1, rate=20.0, users=300),
                        settings=learning_settings(snapshot_every_s=5))  # fmt: skip
    again.run(SECONDS)
    assert again.windows(20) == _lab().windows(20)
    assert again.published == _lab().published


def test_served_auc_is_judged_within_each_version() -> None:
    # Each version ranks perfectly; pooled, version 2's low scores would rank badly.
    versions = np.array([1, 1, 2, 2, 0, 0])
    labels = np.array([False, True, False, True, True, False])
    scores = np.array([0.8, 0.9, 0.1, 0.2, 0.0, 1.0])
    assert served_auc(versions, labels, scores) == 1.0
    assert served_auc(versions[4:], labels[4:], scores[4:]) is None  # fallbacks only


def test_the_learning_config_keeps_the_simulators_world_for_people() -> None:
    config = learning_config(3)
    assert config.bot_share == 0
    assert config.seed == 3
    assert config.rate == TrafficConfig().rate


def test_the_lab_runs_the_specs_it_is_given() -> None:
    settings = learning_settings()
    specs = {
        name: replace(spec, label=replace(spec.label, strategy="fake_negative"))
        for name, spec in configured_specs(settings).items()
    }
    lab = LearningLab(learning_config(rate=10.0, users=100), settings=settings, specs=specs,
                      keep_inputs=True)  # fmt: skip
    lab.run(15)
    join = lab.worker("label-join").step
    assert join.counters.fake_negatives > 0  # type: ignore[attr-defined]
    learner = lab.worker("learner").step.learners["ctr"]  # type: ignore[attr-defined]
    assert learner.spec.label.strategy == "fake_negative"
    assert len(lab.inputs("ctr")) == len(lab.judged("ctr")["label"]) > 0


def test_versions_the_promotion_gate_holds_back_are_never_served() -> None:
    settings = learning_settings(snapshot_every_s=2)
    specs = {
        name: replace(spec, promotion_margin=0.0, promotion_window=20)
        for name, spec in configured_specs(settings).items()
    }
    lab = LearningLab(learning_config(2, rate=20.0, users=300), settings=settings, specs=specs)
    lab.run(60)
    withheld = {(name, v) for name, pubs in lab.withheld.items() for _, v in pubs}
    # Before 20 examples since the last promotion, and when judged worse than it.
    assert withheld
    assert lab.judged_worse
    served = {(p.value["model_name"], p.value["model_version"])
              for p in lab.records(("telemetry.predictions",))}  # fmt: skip
    assert not served & withheld
    promoted = {(name, v) for name, pubs in lab.published.items() for _, v in pubs}
    assert {(n, v) for n, v in served if v} <= promoted


def test_with_inputs_kept_every_served_version_is_kept_to_score_the_same_impressions() -> None:
    lab = LearningLab(learning_config(1, rate=20.0, users=300),
                      settings=learning_settings(models=["ctr"], snapshot_every_s=5),
                      keep_inputs=True)  # fmt: skip
    lab.run(20)
    versions = [version for _, version in lab.published["ctr"]]
    assert sorted(lab.served_models["ctr"]) == versions
    judged, inputs = lab.judged("ctr"), lab.inputs("ctr")
    assert len(inputs) == len(judged["score"])
    spec = lab.specs["ctr"]
    # The version kept is the one that served: it gives back the scores users got.
    for index in np.flatnonzero(judged["version"] > 0)[:50]:
        model = lab.served_models["ctr"][int(judged["version"][index])]
        assert spec.rules.clamp(spec.predict(model, inputs[index])) == judged["score"][index]


def test_with_candidates_judged_the_learner_publishes_each_a_window_after_its_cut() -> None:
    settings = learning_settings(snapshot_every_s=2)
    specs = {
        name: replace(spec, promotion_margin=0.0, promotion_window=20,
                      promotion_judge="candidate")
        for name, spec in configured_specs(settings).items()
    }  # fmt: skip
    lab = LearningLab(learning_config(2, rate=20.0, users=300), settings=settings, specs=specs)
    lab.run(60)
    states = [
        lab._state_serde.decode(m.value)
        for _, m in lab.cluster.log
        if m.topic == "model.state" and m.value is not None
    ]
    for name in specs:
        mine = [s for s in states if s["model_name"] == name]
        assert [s["version"] for s in mine] == list(range(1, len(mine) + 1))
        assert len(mine) >= 3
        # After the first, each was judged on at least a window of examples after its cut.
        assert all(s["metrics"]["gate_examples"] >= 20 for s in mine[1:])
    withheld = {(name, v) for name, pubs in lab.withheld.items() for _, v in pubs}
    served = {(p.value["model_name"], p.value["model_version"])
              for p in lab.records(("telemetry.predictions",))}  # fmt: skip
    assert not served & withheld


def test_figures_follow_rows_added_after_an_earlier_ask() -> None:
    # The arrays behind the figures are made once per length: a lab run on after figures
    # were asked must not be judged on the rows it had then.
    lab = LearningLab(learning_config(2, rate=20.0, users=300),
                      settings=learning_settings(snapshot_every_s=5))  # fmt: skip
    lab.run(30.0)
    early = lab.figures(0.0, 60.0)["ctr"]
    judged = lab.judged("ctr")
    assert lab.judged("ctr")["at_s"] is judged["at_s"]  # nothing added: the same arrays
    with pytest.raises(ValueError, match="read-only"):
        judged["score"][0] = 0.5  # shared: no caller may change them
    lab.run(30.0)
    later = lab.figures(0.0, 60.0)["ctr"]
    assert later.impressions > early.impressions
    assert len(lab.judged("ctr")["at_s"]) == later.impressions


def test_the_shells_settings_do_not_reach_the_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a new user: `STREAMLEARN_SNAPSHOT_EVERY_S=120` in the shell changed the
    bench's figures (and a gate from `STREAMLEARN_MODEL_PROMOTION` came into its specs),
    while it printed "snapshots per spec cadence" and its seed promised the same figures."""
    clean = learning_settings()
    monkeypatch.setenv("STREAMLEARN_SNAPSHOT_EVERY_S", "120")
    monkeypatch.setenv("STREAMLEARN_MODEL_PROMOTION", '{"ctr": {"margin": 0.0, "window": 200}}')
    monkeypatch.setenv("STREAMLEARN_TOPIC_PREFIX", "mine.")
    assert learning_settings() == clean
    specs = configured_specs(learning_settings())
    assert specs["ctr"].promotion_margin is None
    assert specs["ctr"].snapshot_every_s == configured_specs(clean)["ctr"].snapshot_every_s
    lab = LearningLab(learning_config())
    assert lab.settings.snapshot_every_s is None
    assert lab.settings.topic_prefix == ""


def test_prequential_figures_leave_out_serving_times_whose_labels_are_not_all_in() -> None:
    """Found by a new user: a span ending near the lab's present held the last horizon and
    lateness of examples with their positives learned and their negatives not yet (as
    labelled): positives 0.410 of the learned examples against 0.389 clicked, and a
    1-minute run printed a prequential AUC above the truth's ceiling."""
    lab = LearningLab(learning_config(2, rate=20.0, users=300),
                      settings=learning_settings(snapshot_every_s=5))  # fmt: skip
    lab.run(150)
    delay_s = lab.specs["ctr"].label.horizon_s + lab.settings.label_allowed_lateness_s
    delay_s += SETTLE_S
    now = lab.figures(0, 150)
    complete = lab.figures(0, 150 - delay_s)
    lab.run(60)
    later = lab.figures(0, 150 - delay_s)
    for name in lab.specs:
        assert now[name].prequential_auc is not None
        # Over [0, 150) as asked at 150 s: the rows whose labels were all in, which are
        # the same once the lab has run on (none was missing).
        assert (
            now[name].prequential_auc
            == complete[name].prequential_auc
            == (later[name].prequential_auc)
        )
        assert now[name].prequential_log_loss == later[name].prequential_log_loss
        # The served figures judge the world's outcomes, known at once: not cut.
        assert now[name].impressions > complete[name].impressions
