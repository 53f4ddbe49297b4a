"""`streamlearn up`'s options that cannot work are refused before anything starts."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streamlearn.cli import app
from streamlearn.ports import free_port
from streamlearn.up.simulation import simulated_changes


@pytest.fixture(autouse=True)
def restored_environment() -> Iterator[None]:
    """`up --simulate` sets its simulation defaults in this process's environment (for its
    children): put the environment back, or the next tests in this process would run with
    a 5 s snapshot cadence and the rest."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.parametrize("duration", ["0", "-5"])
def test_a_duration_that_is_not_positive_is_refused(duration: str) -> None:
    result = CliRunner().invoke(app, ["up", "--simulate", "--duration", duration])
    assert result.exit_code == 1
    assert f"--duration {duration}: a positive number of seconds" in result.output


@pytest.mark.parametrize(
    "arguments",
    [["--drift-at", "500"], ["--change", "bot_wave@20"], ["--change", "field_dropped@45.5"]],
)
def test_a_change_after_the_run_ends_is_refused(arguments: list[str]) -> None:
    # It would never happen: the run would pass its checks without the change it was for.
    result = CliRunner().invoke(app, ["up", "--simulate", "--duration", "20", *arguments])
    assert result.exit_code == 1
    assert "after the run ends (--duration 20)" in result.output


def test_changes_within_the_run_are_kept() -> None:
    changes = simulated_changes(10.0, ["bot_wave@19.5"], duration_s=20.0)
    assert [str(c) for c in changes] == ["bot_wave@19.5", "feature_drift@10", "concept_drift@10"]
    assert len(simulated_changes(900.0, [], duration_s=None)) == 2  # until Ctrl-C: any time


def test_simulate_refuses_a_duration_that_is_not_positive() -> None:
    result = CliRunner().invoke(app, ["simulate", "--duration", "-1"])
    assert result.exit_code == 1
    assert "--duration -1: a positive number of seconds" in result.output


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--port"],
        ["collector", "serve", "--port"],
        ["registry", "serve", "--port"],
        ["dashboard", "--port"],
        ["agents", "run", "--metrics-port"],
        ["archive", "run", "--metrics-port"],
        ["kafka", "start", "--port"],
        ["up", "--serve-port"],
    ],
    ids=lambda command: " ".join(command),
)
@pytest.mark.parametrize("port", ["70000", "-1"])
def test_a_port_out_of_range_is_a_usage_error(command: list[str], port: str) -> None:
    # Found as `serve --port -1` (a socket.gaierror traceback), `dashboard --port 99999`
    # (an OverflowError traceback) and `serve --port 70000` (served nothing, said nothing).
    result = CliRunner().invoke(app, [*command, port])
    assert result.exit_code == 2, result.output
    assert "Invalid value" in result.output


@pytest.mark.parametrize("option", ["--collector-url", "--predict-url"])
def test_simulate_refuses_a_url_that_is_not_one(option: str) -> None:
    """Found by a new user: `--collector-url notaurl` was taken, and every request failed."""
    result = CliRunner().invoke(app, ["simulate", "--duration", "1", option, "notaurl"])
    assert result.exit_code == 1
    assert f"{option}: 'notaurl' is not an http:// or https:// URL" in result.output


def test_serve_on_port_0_listens_on_a_free_port_not_the_default(tmp_path: Path) -> None:
    """Found by a new user: `serve --port 0` bound 8000 (0 read as "not given"), where a
    real worker may listen."""
    environment = {
        **os.environ,
        "STREAMLEARN_DATA_DIR": str(tmp_path),
        "STREAMLEARN_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",  # no broker: it serves anyway
        "STREAMLEARN_MODEL_SIGNING_KEY": "unit-test-signing-key",
        "STREAMLEARN_SERVE_STARTUP_WAIT_S": "0",  # no broker to wait for: open at once
    }
    with subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "serve", "--port", "0"],
        env=environment, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as worker:  # fmt: skip
        assert worker.stdout is not None
        try:
            line = worker.stdout.readline()
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    match = re.search(r"prediction worker on http://127\.0\.0\.1:(\d+)", line)
    assert match, line
    assert int(match.group(1)) not in (0, 8000)


def test_serve_refuses_port_0_for_several_processes() -> None:
    # Each process would get a port of its own: there would be no one address to serve.
    result = CliRunner().invoke(app, ["serve", "--port", "0", "--workers", "2"])
    assert result.exit_code == 1
    assert "--port 0 with --workers 2" in result.output


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["up", "--simulate", "--drift-at", "-3"],
         "--drift-at -3: a simulated second of 0 or more"),
        (["simulate", "--duration", "1", "--drift-at", "-5"],
         "--drift-at -5: a simulated second of 0 or more"),
        (["up", "--simulate", "--change", "feature_drift@-1"],
         "change feature_drift@-1: a simulated second of 0 or more"),
        (["up", "--simulate", "--chaos-fault", "kill:nope"], "--chaos-fault needs --chaos"),
        (["up", "--simulate", "--chaos-interval", "-1"], "--chaos-interval needs --chaos"),
        (["up", "--drift-at", "5"], "--drift-at needs --simulate"),
        (["up", "--change", "bot_wave@5"], "--change needs --simulate"),
        # Found by a new user: taken and ignored without --simulate, where --drift-at and
        # --change were refused.
        (["up", "--rate", "50"], "--rate needs --simulate"),
        (["up", "--users", "10"], "--users needs --simulate"),
        (["up", "--bot-share", "0.5"], "--bot-share needs --simulate"),
        (["up", "--seed", "3"], "--seed needs --simulate"),
    ],
)  # fmt: skip
def test_simulation_options_that_would_be_ignored_or_are_wrong_name_themselves(
    arguments: list[str], said: str
) -> None:
    """Found by a new user: `up --simulate --drift-at -3` said `change feature_drift: at_s
    must be ...` (an internal field, a change not given); `simulate --drift-at -5` was
    taken; chaos options without --chaos were ignored."""
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 1, result.output
    assert said in result.output


def test_an_unknown_change_lists_only_what_up_injects_and_rate_errors_name_the_option() -> None:
    """Found by a new user: the list of kinds offered `broken_model`, which `up` then
    refused as the lab's only; `--rate 0` said "rate must be positive and users at least
    1", naming neither option."""
    wrong = CliRunner().invoke(app, ["up", "--simulate", "--change", "nope@10"])
    assert wrong.exit_code == 1
    assert "KIND one of" in wrong.output
    assert "broken_model" not in wrong.output
    lab = CliRunner().invoke(app, ["up", "--simulate", "--change", "broken_model@10"])
    assert lab.exit_code == 1
    assert "injected by the lab only" in lab.output
    for option in ("--rate", "--users"):
        zero = CliRunner().invoke(app, ["up", "--simulate", option, "0"])
        assert zero.exit_code == 1
        assert f"{option} 0:" in zero.output, zero.output


def test_up_reports_to_a_file_at_a_width_that_keeps_its_tables_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: with up's output in a CI log the summary's tables were cut to
    rich's 80 columns (`versi…`, `ctr_tr…`)."""
    from streamlearn.cli_up import WIDE_COLUMNS, up_console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert up_console(False).width == WIDE_COLUMNS  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert up_console(False).width == 100
