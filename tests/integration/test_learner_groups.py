"""Two learner groups on one ``training.examples``: each reads every example and publishes
every model, each its own version N, and the prediction workers can only refuse one of the
two as ``conflicting_version`` after the fact. A learner worker therefore refuses to start
while a worker of another group of its namespace runs the learner on the same topic (a
group that runs other agents, such as a monitor reading ``training.examples``, is no
reason), and names that group. Before, the second group joined and published."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from streamlearn.settings import Settings
from tests.agent_workers import Workers, running


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


def test_a_second_learner_group_is_refused_at_start(settings: Settings) -> None:
    monitor = Workers(settings, only="monitor", group="streamlearn-monitor")
    first = Workers(settings, only="learner", group="streamlearn-learner")
    with running(monitor, 1), running(first, 1):
        # A group that reads training.examples without the learner is no second learner.
        monitor.wait_for_members(1)
        first.wait_for_members(1)

        second = Workers(settings, only="learner", group="other-learners", label="-second")
        process = second.start()
        try:
            code = process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            second.stop()
            pytest.fail("a learner in a second group started beside the first one")
        log = settings.data_dir / f"worker-{settings.topic_prefix}other-learners-second-1.log"
        output = log.read_text()
        assert code == 1, output
        assert f"group {first.group_id} runs the learner" in output, output
        assert "conflicting_version" in output, output
