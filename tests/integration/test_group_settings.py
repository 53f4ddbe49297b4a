"""A worker joining a group whose members run other output settings says so.

Each partition's outputs follow the settings of the worker that owns it: a worker started
with another session gap beside the group's others made 21 fewer sessions, and changed
one, in the 3 partitions it took of 6 (a new-user pass, 2026-12-07), without a word.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streamlearn.settings import Settings
from tests.agent_workers import Workers

WARNING = "run other settings"


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


def _log_text(settings: Settings) -> str:
    return "".join(path.read_text() for path in settings.data_dir.glob("worker-*.log"))


def _wait_for_line(settings: Settings, text: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in _log_text(settings):
            return True
        time.sleep(0.5)
    return False


def test_a_worker_with_another_session_gap_says_the_group_runs_other_settings(
    settings: Settings,
) -> None:
    first = Workers(settings, only="sessionise", group="g")
    other = Workers(
        settings, only="sessionise", group="g", label="-gap120", STREAMLEARN_SESSION_GAP_S="120"
    )
    try:
        first.start()
        first.wait_for_members(1)
        assert WARNING not in _log_text(settings)
        other.start()
        assert _wait_for_line(settings, WARNING, timeout_s=60), _log_text(settings)[-3000:]
        line = next(line for line in _log_text(settings).splitlines() if WARNING in line)
        assert "session_gap_s=120.0" in line
    finally:
        codes = first.stop() + other.stop()
    assert codes == [0, 0]


def test_workers_of_the_same_settings_say_nothing(settings: Settings) -> None:
    workers = Workers(settings, only="sessionise", group="g")
    try:
        workers.start()
        workers.wait_for_members(1)
        workers.start()
        workers.wait_for_members(2)
        assert WARNING not in _log_text(settings)
    finally:
        codes = workers.stop()
    assert codes == [0, 0]


def test_workers_started_together_with_other_settings_both_say_so(settings: Settings) -> None:
    # Started at once (a Deployment scaled up, a roll), neither is a member when the other
    # starts: a check at start alone saw nothing (a new-user pass, 2026-12-07).
    first = Workers(settings, only="sessionise", group="g")
    other = Workers(
        settings, only="sessionise", group="g", label="-gap120", STREAMLEARN_SESSION_GAP_S="120"
    )
    try:
        first.start()
        other.start()
        first.wait_for_members(2)
        logs = sorted(settings.data_dir.glob("worker-*.log"))
        assert len(logs) == 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(WARNING in log.read_text() for log in logs):
            time.sleep(0.5)
        assert all(WARNING in log.read_text() for log in logs), _log_text(settings)[-3000:]
    finally:
        codes = first.stop() + other.stop()
    assert codes == [0, 0]
