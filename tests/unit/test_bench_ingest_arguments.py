"""bench/ingest.py's command line: what it cannot run refused before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench_support import no_broker, refusal
from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ingest.py"

# Run as a script, it imports its neighbours (bench_kafka) from bench/.
sys.path.insert(0, str(SCRIPT.parent))
bench_ingest = load_script(SCRIPT, "bench_ingest")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Found by a new user: after the broker, the registry, the events and the raw loop,
        # a KeyError, and the label-join worker it had started was left running, orphaned.
        (["--agents", "label-join"], "--agents label-join: preprocess, or preprocess,sessionise"),
        # sessionise alone would wait for ever on events.clean, which preprocess writes.
        (["--agents", "sessionise"], "--agents sessionise: preprocess, or preprocess,sessionise"),
        # A broker started and stopped, then nothing printed, exit 0.
        (["--rounds", "0"], "--rounds must be >= 1"),
        (["--events", "0"], "--events must be >= 1"),
    ],
)  # fmt: skip
def test_what_it_cannot_run_is_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    assert said in refusal(bench_ingest.main, argv, capsys)


@pytest.mark.parametrize("agents", ["preprocess", "preprocess,sessionise", "sessionise,preprocess"])
def test_the_agents_it_measures_are_taken(monkeypatch: pytest.MonkeyPatch, agents: str) -> None:
    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    with pytest.raises(AssertionError, match="a broker was started"):
        bench_ingest.main(["--agents", agents])


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_quix_environment_that_cannot_be_made_is_said_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Found by a new user, without access to the package index: `--quix` ran the broker,
    the events and the raw loop, then bench/setup-quix-venv failed (a CalledProcessError
    traceback), leaving a virtualenv without quixstreams; every later `--quix` run took
    its python for a ready baseline and failed at the end of the round with
    "ModuleNotFoundError: No module named 'quixstreams'". The environment is now checked
    by importing quixstreams (and made if it cannot) before the broker starts."""

    broken = _script(tmp_path / "python", "exit 1")  # a venv whose import of quixstreams fails
    setup_ran = tmp_path / "setup-ran"
    setup = _script(
        tmp_path / "setup-quix-venv", f"touch {setup_ran}\necho 'pip: no index' >&2\nexit 1"
    )
    monkeypatch.setattr(bench_ingest, "QUIX_PYTHON", broken)
    monkeypatch.setattr(bench_ingest, "SETUP_QUIX", setup)
    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    with pytest.raises(SystemExit) as exited:
        bench_ingest.main(["--quix"])
    assert setup_ran.exists()  # the broken environment was set up again
    said = str(exited.value.code)
    assert "bench/setup-quix-venv failed (exit 1;" in said
    assert "leave out --quix" in said


def test_a_quix_environment_that_imports_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    setup_ran = tmp_path / "setup-ran"
    monkeypatch.setattr(bench_ingest, "QUIX_PYTHON", _script(tmp_path / "python", "exit 0"))
    monkeypatch.setattr(
        bench_ingest, "SETUP_QUIX", _script(tmp_path / "setup", f"touch {setup_ran}")
    )
    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    with pytest.raises(AssertionError, match="a broker was started"):
        bench_ingest.main(["--quix"])
    assert not setup_ran.exists()
