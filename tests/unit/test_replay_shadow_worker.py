"""The worker `replay agents` starts in the shadow namespace, without a broker: the
process is a stand-in that records how it was started."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest

from streamlearn.orphan_watch import SUPERVISOR_PID_ENV
from streamlearn.replay import shadow
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.shadow import ShadowPlan, run_shadow
from streamlearn.settings import ExplicitSettings, Settings


class _Worker:
    """A shadow worker that runs until terminated, then exits 0."""

    started: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, args: list[str], **options: Any) -> None:
        _Worker.started.append({"args": args, **options})
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.returncode = 0

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None
        return self.returncode


class _Input:
    """telemetry.events[0] of the shadow namespace: END records, of which the worker
    commits ``per_check`` more at each check, and a clock that moves ``seconds_per_check``
    from one check to the next."""

    END = 1_000_000

    def __init__(self, per_check: int, seconds_per_check: float) -> None:
        self.committed = 0
        self.per_check = per_check
        self.seconds_per_check = seconds_per_check
        self.now = 0.0

    def committed_offsets(self, settings: Settings, group: str) -> dict[tuple[str, int], int]:
        self.committed = min(self.END, self.committed + self.per_check)
        return {("try1.telemetry.events", 0): self.committed}

    def end_offsets(self, settings: Settings, topic: str) -> dict[int, tuple[int, int]]:
        return {0: (0, self.END)}

    def monotonic(self) -> float:
        self.now += self.seconds_per_check
        return self.now


def _worker_on(monkeypatch: pytest.MonkeyPatch, the_input: _Input) -> type[_Worker]:
    _Worker.started = []
    monkeypatch.setattr(shadow.subprocess, "Popen", _Worker)
    monkeypatch.setattr(shadow, "committed_offsets", the_input.committed_offsets)
    monkeypatch.setattr(shadow, "end_offsets", the_input.end_offsets)
    monkeypatch.setattr(shadow.time, "monotonic", the_input.monotonic)
    monkeypatch.setattr(shadow.time, "sleep", lambda seconds: None)
    return _Worker


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> type[_Worker]:
    """A worker that has committed every input at the first check."""
    return _worker_on(monkeypatch, _Input(per_check=_Input.END, seconds_per_check=1.0))


def _plan() -> ShadowPlan:
    """A plan of preprocess into ``try1.`` (its ranges are the stand-ins' business)."""
    source = SimpleNamespace(name="kafka")
    return ShadowPlan(("preprocess",), "", "try1.", {}, ("telemetry.events",), source)  # type: ignore[arg-type]


def test_the_worker_reads_the_cluster_the_command_was_given(
    worker: type[_Worker], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `replay agents --bootstrap-servers B` copied into B's shadow topics, then started
    # its worker on the environment's cluster (or 127.0.0.1:9092, perhaps another
    # deployment's broker), where it failed or made the shadow's topics.
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP", "127.0.0.1:21298")
    settings = ExplicitSettings(kafka_bootstrap="127.0.0.1:21201", data_dir=tmp_path)
    assert run_shadow(settings, _plan(), tmp_path / "worker.log") == 0
    env = worker.started[0]["env"]
    assert env["STREAMLEARN_KAFKA_BOOTSTRAP"] == "127.0.0.1:21201"
    assert env["STREAMLEARN_TOPIC_PREFIX"] == "try1."


def test_a_long_replay_runs_as_long_as_its_worker_commits(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A million records at 1,000 a second: about 17 minutes. The worker was stopped after
    # 600 s whatever it was doing ("did not finish in 600s"), so a replay of more than
    # a few minutes of a real deployment's input could never finish.
    the_input = _Input(per_check=10_000, seconds_per_check=10.0)
    _worker_on(monkeypatch, the_input)
    settings = ExplicitSettings(data_dir=tmp_path)
    assert run_shadow(settings, _plan(), tmp_path / "worker.log") == 0
    assert the_input.committed == _Input.END
    assert the_input.now > 600


def test_a_worker_that_stops_committing_is_given_up_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _worker_on(monkeypatch, _Input(per_check=0, seconds_per_check=10.0))
    settings = ExplicitSettings(data_dir=tmp_path)
    with pytest.raises(ReplayError, match=r"committed nothing for 600s \(0 of 1,000,000"):
        run_shadow(settings, _plan(), tmp_path / "worker.log")


def test_a_worker_that_ends_early_says_the_namespace_holds_part_of_the_replay(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # It said only "the shadow worker exited with 1; see <log>": nothing said that the
    # shadow topics held a partial replay, which the next `replay agents --into` refuses.
    from contextlib import nullcontext

    from typer.testing import CliRunner

    from streamlearn import cli_replay, serde
    from streamlearn.cli import app

    def worker_ended(settings: Settings, plan: ShadowPlan, log: Path) -> int:
        raise ReplayError(f"the shadow worker exited with 1; see {log}")

    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(serde.RegistryClient, "for_settings", lambda settings: nullcontext())
    monkeypatch.setattr(cli_replay, "_record_source", lambda *arguments: None)
    monkeypatch.setattr(shadow, "plan_shadow", lambda *arguments: _plan())
    monkeypatch.setattr(shadow, "copy_inputs", lambda settings, plan, advance: None)
    monkeypatch.setattr(shadow, "run_shadow", worker_ended)
    command = ["replay", "agents", "--only", "preprocess", "--into", "try1."]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 1
    assert "the shadow worker exited with 1; see " in result.output
    assert "holds part of the replay" in result.output
    assert "streamlearn replay drop --into try1. --force" in result.output
    assert not (tmp_path / "replays" / "try1.json").exists()


def test_the_worker_stops_itself_when_the_replay_is_killed(
    worker: type[_Worker], tmp_path: Path
) -> None:
    # `kill <replay agents>` (a CI job's timeout, `timeout 600 streamlearn replay agents`)
    # left its worker running for good, re-parented, a member of the shadow's group, so
    # that `replay drop` refused the namespace as one whose worker still runs.
    settings = ExplicitSettings(data_dir=tmp_path)
    run_shadow(settings, _plan(), tmp_path / "worker.log")
    env = worker.started[0]["env"]
    assert env[SUPERVISOR_PID_ENV] == str(os.getpid())
