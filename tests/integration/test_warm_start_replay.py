"""A warm start as docs/learning.md gives it, on the embedded broker: a baseline made with
`replay model ctr --shadow history`, a learner told to start from it, and `replay verify`
proving every version the learner published, the first one from the baseline."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.agent_workers import Workers, running
from tests.integration.test_replay import CTR_PARTITION, _cli, _produce, _serde, _snapshots
from tests.support import click_examples, committed_to_end


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


@pytest.fixture
def registry(settings: Settings) -> Any:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def test_a_warm_started_learner_publishes_versions_replay_verify_proves(
    settings: Settings, registry: RegistryClient
) -> None:
    serde = _serde(settings, registry, "training.examples", "TrainingExample")
    records = [(b"ctr", serde.encode(e)) for e in click_examples(3000, seed=3)]
    _produce(settings, "training.examples", records[:1500])
    made = _cli(settings, "model", "ctr", "--to", f"{CTR_PARTITION}:1200", "--shadow", "history")
    assert made.returncode == 0, made.stdout + made.stderr
    (baseline,) = _snapshots(settings, registry, "ctr@history")
    assert baseline["trained_examples"] == 1200

    learner = Workers(
        settings,
        only="learner",
        group="learner",
        STREAMLEARN_MODEL_WARM_START=json.dumps({"ctr": "ctr@history"}),
        STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="600",
        STREAMLEARN_SNAPSHOT_EVERY_S="600",
    )
    with running(learner, 1):
        _produce(settings, "training.examples", records[1500:])
        deadline = time.monotonic() + 120
        while not committed_to_end(settings, "training.examples", learner.group_id):
            assert time.monotonic() < deadline, "the learner did not consume every example"
            time.sleep(0.5)
    live = _snapshots(settings, registry, "ctr")
    assert live[0]["version"] == 1
    assert json.loads(live[0]["manifest"])["warm_start"] == {
        "model_name": "ctr@history",
        "version": 1,
    }
    verified = _cli(settings, "verify", "ctr", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "ctr v1: identical; from ctr@history v1" in verified.stdout
    assert f"{len(live)} version(s) verified" in verified.stdout
