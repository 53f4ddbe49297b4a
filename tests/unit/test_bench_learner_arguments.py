"""bench/learner.py's command line: sizes it cannot time refused before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench_support import no_broker, refusal
from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "learner.py"

# Run as a script, it imports its neighbours (bench_kafka) from bench/.
sys.path.insert(0, str(SCRIPT.parent))
bench_learner = load_script(SCRIPT, "bench_learner")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Found by a new user: a broker, a registry and the agent ran for a minute, then
        # ZeroDivisionError: one snapshot, nothing between snapshots to time.
        (["--examples", "10000"], "--examples 10000: at least 30000"),
        # Ran, and timed the 10 s the agent waited to snapshot the last 9,870: 0.06x.
        (["--examples", "20000"], "--examples 20000: at least 30000"),
        (["--examples", "0"], "--examples 0: at least 30000"),
        # statistics.StatisticsError after the broker had started and stopped.
        (["--rounds", "0"], "--rounds must be >= 1"),
    ],
)  # fmt: skip
def test_sizes_it_cannot_time_are_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    monkeypatch.delenv("STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES", raising=False)
    monkeypatch.setattr(bench_learner, "bench_broker", no_broker)
    assert said in refusal(bench_learner.main, argv, capsys)


def test_the_minimum_follows_the_configured_cadence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The agent snapshots at the configured cadence: a smaller one allows fewer examples."""
    monkeypatch.setenv("STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES", "1000")
    monkeypatch.setattr(bench_learner, "bench_broker", no_broker)
    with pytest.raises(SystemExit):
        bench_learner.main(["--examples", "2999"])
    assert "--examples 2999: at least 3000" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="a broker was started"):
        bench_learner.main(["--examples", "3000"])
