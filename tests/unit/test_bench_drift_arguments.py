"""bench/drift.py's command line: runs that cannot measure anything refused before any runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_support import refusal
from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "drift.py"

bench_drift = load_script(SCRIPT, "bench_drift")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Found by a new user: a ValueError traceback from the change's constructor.
        (["--change-at", "-5"], "--change-at must be >= 0, not -5"),
        # Ran every scenario and reported each change "missed": nothing ran after it.
        (["--after-s", "0"], "--after-s must be > 0, not 0"),
        # Taken as "no drift-free run", silently.
        (["--quiet-s", "-10"], "--quiet-s must be >= 0 (0: none), not -10"),
    ],
)  # fmt: skip
def test_runs_that_measure_nothing_are_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    def no_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a scenario ran")

    monkeypatch.setattr(bench_drift, "run", no_run)
    assert said in refusal(bench_drift.main, argv, capsys)
