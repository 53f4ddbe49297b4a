"""A learner upgraded to a new revision of its spec: the snapshots of the old revision on
``model.state`` are refused (their payloads mean something else), counted, and the learner
starts anew, numbering its versions after them, instead of failing to open its partition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from river import linear_model, optim

from streamlearn.models.configured import configured_specs
from streamlearn.models.features import FeatureEncoder
from streamlearn.models.signature import key_bytes
from streamlearn.models.snapshot import build_snapshot
from streamlearn.simulate.learning_lab import (
    LAB_SIGNING_KEY,
    LearningLab,
    learning_config,
    learning_settings,
)

pytestmark = pytest.mark.unit


def _revision_1(seed: int) -> object:
    return FeatureEncoder() | linear_model.LogisticRegression(optimizer=optim.SGD(0.01))


def test_an_old_revisions_snapshot_is_refused_and_the_learner_starts_anew() -> None:
    settings = learning_settings(models=["ctr"])
    ctr = configured_specs(settings)["ctr"]
    old = replace(ctr, estimator="FeatureEncoder | LogisticRegression(SGD(0.01))", revision=1,
                  build=_revision_1)  # fmt: skip
    assert old.description != ctr.description
    snapshot = build_snapshot(
        old,
        old.new_model(0),
        version=7,
        parent_version=6,
        trained_examples=100,
        offsets={},
        metrics={},
        created=datetime(2026, 1, 1, tzinfo=UTC),
        key=key_bytes(LAB_SIGNING_KEY),
        model_name="ctr",
    )
    lab = LearningLab(learning_config(0, rate=10.0), settings=settings, baselines=[snapshot])
    lab.run(15)
    [(_, first), *_] = lab.published["ctr"]
    assert first == 8  # numbered after the refused one, so workers move on
    rejected = lab.metrics.registry.get_sample_value(
        "streamlearn_learner_rejected_snapshots_total",
        {"model": "ctr", "reason": "unknown_spec"},
    )
    assert rejected == 1.0
