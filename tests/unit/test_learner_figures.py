"""The learner's figures for operators: recent served AUC/ECE gauges, versions held back
by the promotion gate (counter by reason) and the alert that says why."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest
from fastavro import parse_schema
from fastavro.validation import validate
from prometheus_client import CollectorRegistry

from streamlearn.agents.learner_figures import HELD_BACK_KIND, LearnerFigures
from streamlearn.models.served_metrics import RecentServed, ServedAuc
from streamlearn.models.synthetic import exact_auc
from streamlearn.monitoring.calibration import ReliabilityBins


def _snapshot(version: int, metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "model_name": "ctr",
        "version": version,
        "metrics": metrics,
        "created_ts": datetime(2026, 12, 1, tzinfo=UTC),
    }


JUDGED_WORSE = {
    "promoted": 0.0,
    "gate_examples": 500.0,
    "gate_log_loss": 0.61,
    "gate_promoted_log_loss": 0.52,
    "gate_margin": 0.005,
}


def test_a_version_judged_worse_is_counted_and_raises_an_alert_saying_why() -> None:
    registry = CollectorRegistry()
    figures = LearnerFigures(registry)
    alert = figures.published(_snapshot(7, JUDGED_WORSE), {"recent_served_auc": 0.8})
    assert alert is not None
    assert alert["kind"] == HELD_BACK_KIND
    assert (alert["model_name"], alert["model_version"]) == ("ctr", 7)
    assert alert["value"] == 0.61
    assert alert["threshold"] == 0.52 + 0.005
    assert "0.6100" in alert["message"]
    assert "0.5200" in alert["message"]
    assert "500 examples" in alert["message"]
    schema = json.loads(resources.files("streamlearn.schemas").joinpath("Alert.avsc").read_text())
    assert validate(alert, parse_schema(schema))
    held = registry.get_sample_value(
        "streamlearn_learner_versions_held_back_total", {"model": "ctr", "reason": "judged_worse"}
    )
    assert held == 1.0
    assert (
        registry.get_sample_value("streamlearn_learner_recent_served_auc", {"model": "ctr"}) == 0.8
    )


def test_a_version_held_back_for_its_ranking_says_so_not_that_its_log_loss_was_worse() -> None:
    """With ``auc_margin`` a candidate whose log loss passed is held back for its AUC: the
    alert said "held-out log loss 0.5100 against 0.5200", which reads as a pass."""
    ranks_worse = {
        **JUDGED_WORSE, "gate_log_loss": 0.51, "gate_auc": 0.781, "gate_promoted_auc": 0.79,
        "gate_auc_margin": 0.0,
    }  # fmt: skip
    alert = LearnerFigures(CollectorRegistry()).published(_snapshot(8, ranks_worse), {})
    assert alert is not None
    assert "held-out AUC 0.7810" in alert["message"]
    assert "0.7900" in alert["message"]
    assert "log loss" not in alert["message"]
    assert (alert["value"], alert["threshold"]) == (0.781, 0.79)
    both = {**ranks_worse, "gate_log_loss": 0.61}
    alert = LearnerFigures(CollectorRegistry()).published(_snapshot(9, both), {})
    assert alert is not None
    assert "held-out log loss 0.6100" in alert["message"]
    assert "held-out AUC 0.7810" in alert["message"]
    assert alert["value"] == 0.61  # the log loss's, as without the AUC criterion


def test_versions_held_for_a_short_window_are_counted_without_an_alert() -> None:
    registry = CollectorRegistry()
    figures = LearnerFigures(registry)
    assert figures.published(_snapshot(2, {"promoted": 0.0, "gate_examples": 30.0}), {}) is None
    assert figures.published(_snapshot(3, {"promoted": 1.0}), {}) is None
    assert figures.published(_snapshot(4, {"auc": 0.7}), {}) is None  # no gate
    labels = {"model": "ctr", "reason": "short_window"}
    assert registry.get_sample_value("streamlearn_learner_versions_held_back_total", labels) == 1.0


def test_recent_served_figures_forget_what_is_older_than_the_window() -> None:
    recent = RecentServed(size=4)
    assert recent.figures() == {}
    # A badly ranking, badly calibrated start, then a version that ranks perfectly.
    for truth, score in ((True, 0.1), (False, 0.9), (True, 0.2), (False, 0.8)):
        recent.update(1, truth, score, 1.0)
    assert recent.figures()["recent_served_auc"] == 0.0
    for truth, score in ((True, 0.9), (False, 0.1), (True, 0.8), (False, 0.2)):
        recent.update(2, truth, score, 1.0)
    figures = recent.figures()
    assert figures["recent_served_auc"] == 1.0
    assert figures["recent_examples"] == 4.0
    # One example per bin (0.9, 0.1, 0.8, 0.2): |label - score| 0.1, 0.1, 0.2, 0.2.
    assert abs(figures["recent_ece"] - 0.15) < 1e-9


def test_recent_served_auc_is_judged_within_each_version() -> None:
    recent = RecentServed()
    # Each version ranks perfectly; pooled, v2's scores all sit above v1's (calibration
    # moved), which would rank a v1 positive under a v2 negative.
    for version, shift in ((1, 0.0), (2, 0.5)):
        for truth, score in ((True, 0.4), (False, 0.1)):
            recent.update(version, truth, score + shift, 1.0)
    assert recent.figures()["recent_served_auc"] == 1.0


def _recent_figures_one_by_one(rows: list[tuple[int, bool, float, float]]) -> dict[str, float]:
    """What the recent figures are by definition: every row of the window through the
    reliability bins in order, then the exact AUC of each version in order of first
    appearance, weighted by its rows."""
    bins = ReliabilityBins()
    by_version: dict[int, tuple[list[bool], list[float]]] = {}
    for version, truth, score, weight in rows:
        bins.add(score, float(truth), weight)
        labels, scores = by_version.setdefault(version, ([], []))
        labels.append(truth)
        scores.append(score)
    total = weighted = 0.0
    for labels, scores in by_version.values():
        if any(labels) and not all(labels):
            weighted += exact_auc(labels, scores) * len(labels)
            total += len(labels)
    figures = {"recent_ece": bins.ece(), "recent_examples": float(len(rows))}
    if total:
        figures["recent_served_auc"] = weighted / total
    return figures


@pytest.mark.parametrize("size", [1, 7, 500])
def test_recent_served_figures_are_those_of_the_window_one_row_at_a_time(size: int) -> None:
    """Bit for bit, as the window rolls over: weights other than 1, scores out of [0, 1]
    and on bin edges, ties, versions coming back, a version of one class only."""
    rng = random.Random(size)
    recent = RecentServed(size=size)
    rows: list[tuple[int, bool, float, float]] = []
    for step in range(3 * size + 11):
        version = rng.choice([1, 2, 3, 2, 9]) if step % 50 else 4
        score = rng.choice([rng.random(), 0.5, 1.0, 0.0, -0.2, 1.3, round(rng.random(), 1)])
        truth = version != 9 and rng.random() < score
        weight = rng.choice([1.0, 0.25, 3.0, rng.random()])
        recent.update(version, truth, score, weight)
        rows.append((version, truth, score, weight))
        if step % 5 == 0 or step > 3 * size:
            assert recent.figures() == _recent_figures_one_by_one(rows[-size:]), step


def test_served_auc_asked_often_is_that_of_all_its_rows_asked_once() -> None:
    """Each version's AUC is kept between asks: a version's new example must renew it,
    old versions falling out of the kept ones must leave it."""
    rng = random.Random(3)
    asked_often = ServedAuc()
    rows: list[tuple[int, bool, float]] = []
    for step in range(1500):  # 75 versions: the oldest fall out of the 50 kept
        version = min(step // 20 + 1, rng.choice([1, 2, step // 20 + 1, step // 20 + 1]))
        score = rng.random()
        truth = rng.random() < score
        asked_often.update(version, truth, score, 1.0)
        rows.append((version, truth, score))
        if step % 23 == 0 or step > 1480:
            asked_once = ServedAuc()
            for row in rows:
                asked_once.update(*row, 1.0)
            assert asked_often.get() == asked_once.get(), step


def test_the_prequential_auc_is_a_gauge_too() -> None:
    """`up` judges a model by it: the version workers serve may be one a gate promoted long
    before, with the figures of then."""
    registry = CollectorRegistry()
    figures = LearnerFigures(registry)
    figures.published(_snapshot(8, {"promoted": 0.0, "gate_log_loss": 0.6,
                                    "gate_promoted_log_loss": 0.5}),
                      {"auc": 0.81, "served_auc": 0.79})  # fmt: skip
    assert registry.get_sample_value("streamlearn_learner_auc", {"model": "ctr"}) == 0.81
    assert registry.get_sample_value("streamlearn_learner_served_auc", {"model": "ctr"}) == 0.79
