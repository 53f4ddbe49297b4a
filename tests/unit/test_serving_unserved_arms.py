"""A worker that reads an experiment routing users to a model it does not serve says so.

Found restarting a prediction worker of `up --simulate` with the default
STREAMLEARN_MODELS (ctr alone): the experiment `ranking` splits users between ctr and
ctr_tree, and the worker answered half of them with ctr_tree's fallback (0.02, `skip`,
degraded `no_model`) while its log said only which arms the experiment has."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from streamlearn.models import SPECS
from streamlearn.serving.experiments import ExperimentBook
from streamlearn.serving.follower import StateFollower
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore
from tests.serving_support import KEY

pytestmark = pytest.mark.unit


class _Serde:
    """Stands in for the Avro serde: the records' values are the decoded experiments."""

    def decode(self, value: dict[str, Any], **_where: Any) -> dict[str, Any]:
        return value


def _follower(served: list[str]) -> StateFollower:
    return StateFollower(
        consumer_config={},
        model_topic="model.state",
        experiment_topic="experiments",
        snapshot_serde=_Serde(),  # type: ignore[arg-type]
        experiment_serde=_Serde(),  # type: ignore[arg-type]
        key=KEY,
        specs=SPECS,
        store=ModelStore(served),
        book=ExperimentBook(),
        metrics=ServingMetrics(),
        on_rejected=lambda exc: None,
    )


def _ranking(*, enabled: bool = True) -> SimpleNamespace:
    value = {
        "name": "ranking",
        "salt": "ranking",
        "enabled": enabled,
        "arms": [
            {"name": "logistic", "model_name": "ctr", "weight": 0.5},
            {"name": "tree", "model_name": "ctr_tree", "weight": 0.5},
        ],
    }
    return SimpleNamespace(key=b"ranking", value=value, offset=0)


def test_an_arm_of_a_model_the_worker_does_not_serve_is_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="streamlearn.serving.follower"):
        asyncio.run(_follower(["ctr"])._experiments([_ranking()]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "arm tree: ctr_tree is not in STREAMLEARN_MODELS here (ctr)" in warnings[0]
    assert "experiment ranking" in warnings[0]


def test_no_warning_when_the_worker_serves_every_arm_or_the_experiment_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="streamlearn.serving.follower"):
        asyncio.run(_follower(["ctr", "ctr_tree"])._experiments([_ranking()]))
        asyncio.run(_follower(["ctr"])._experiments([_ranking(enabled=False)]))
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "experiment ranking: disabled" in caplog.text  # read, and said
