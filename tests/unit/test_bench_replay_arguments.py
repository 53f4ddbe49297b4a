"""bench/replay.py's command line: sizes it cannot measure refused before the broker starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench_support import no_broker, refusal
from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "replay.py"

# Run as a script, it imports its neighbours (bench_kafka) from bench/.
sys.path.insert(0, str(SCRIPT.parent))
bench_replay = load_script(SCRIPT, "bench_replay")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Found by a new user: a broker and a registry started, then ZeroDivisionError.
        (["--examples", "0"], "--examples must be >= 1, not 0"),
        # Ran one round and said "median of 1 rounds".
        (["--rounds", "0"], "--rounds must be >= 1, not 0"),
    ],
)  # fmt: skip
def test_sizes_it_cannot_measure_are_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    monkeypatch.setattr(bench_replay, "bench_broker", no_broker)
    assert said in refusal(bench_replay.main, argv, capsys)
