"""bench/ingest.py's command line: what it cannot run refused before anything runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
    def no_broker() -> None:
        raise AssertionError("a broker was started")

    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    with pytest.raises(SystemExit) as exited:
        bench_ingest.main(argv)
    assert exited.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize("agents", ["preprocess", "preprocess,sessionise", "sessionise,preprocess"])
def test_the_agents_it_measures_are_taken(monkeypatch: pytest.MonkeyPatch, agents: str) -> None:
    def no_broker() -> None:
        raise AssertionError("a broker was started")

    monkeypatch.setattr(bench_ingest, "bench_broker", no_broker)
    with pytest.raises(AssertionError, match="a broker was started"):
        bench_ingest.main(["--agents", agents])
