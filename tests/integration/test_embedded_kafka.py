"""`streamlearn kafka start|status|stop` as a user runs them: separate processes, real broker."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_local import free_port


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamlearn", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("STREAMLEARN_KAFKA_BOOTSTRAP", None)
    return env


def test_start_status_stop(tmp_path: Path, cli_env: dict[str, str]) -> None:
    data_dir = str(tmp_path / "kafka")
    port = free_port()

    began = time.monotonic()
    started = _cli("kafka", "start", "--port", str(port), "--data-dir", data_dir, env=cli_env)
    start_to_ready = time.monotonic() - began
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"127.0.0.1:{port}"
    print(f"embedded broker start-to-ready (cold, incl. storage format): {start_to_ready:.2f}s")

    status = _cli("kafka", "status", "--data-dir", data_dir, env=cli_env)
    assert status.returncode == 0, status
    assert f"at 127.0.0.1:{port}, answering metadata requests" in status.stdout

    metadata = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=10)
    assert list(metadata.brokers) == [1]

    # Starting again finds the running broker instead of launching a second one.
    again = _cli("kafka", "start", "--port", str(port), "--data-dir", data_dir, env=cli_env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"127.0.0.1:{port}"
    # Asked for another port, it says the running broker stays where it is.
    other = free_port()
    moved = _cli("kafka", "start", "--port", str(other), "--data-dir", data_dir, env=cli_env)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == f"127.0.0.1:{port}"
    assert f"already running at 127.0.0.1:{port}, not on --port {other}" in moved.stderr

    stopped = _cli("kafka", "stop", "--data-dir", data_dir, env=cli_env)
    assert stopped.returncode == 0, stopped
    assert stopped.stdout.strip() == "stopped", stopped
    server_log = (tmp_path / "kafka" / "logs" / "server.log").read_text()
    assert "shut down completed" in server_log, "the broker must shut down cleanly"

    status = _cli("kafka", "status", "--data-dir", data_dir, env=cli_env)
    assert status.returncode == 3, status
    assert status.stdout.strip() == "not running", status
    assert (
        _cli("kafka", "stop", "--data-dir", data_dir, env=cli_env).stdout.strip() == "not running"
    )

    # A restart on the same (already formatted) data directory keeps working.
    restarted = _cli("kafka", "start", "--port", str(port), "--data-dir", data_dir, env=cli_env)
    assert restarted.returncode == 0, restarted.stderr
    assert _cli("kafka", "stop", "--data-dir", data_dir, env=cli_env).returncode == 0


def test_port_taken_by_someone_else_is_a_clear_error(
    tmp_path: Path, cli_env: dict[str, str], kafka_bootstrap: str
) -> None:
    taken = kafka_bootstrap.rpartition(":")[2]
    result = _cli("kafka", "start", "--port", taken, "--data-dir", str(tmp_path / "k"), env=cli_env)
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr


def test_a_port_bound_but_not_listening_is_the_same_clear_error(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """A socket bound without listening answers no connection, so the check let the broker
    start, fail to bind, and stop with 15 lines of its shutdown and no word of why."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        taken = str(holder.getsockname()[1])
        result = _cli(
            "kafka", "start", "--port", taken, "--data-dir", str(tmp_path / "k"), env=cli_env
        )
    assert result.returncode == 1
    assert f"port {taken} on 127.0.0.1 is already in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def _wait_for_line(process: subprocess.Popen[str], text: str, timeout_s: float = 120) -> list[str]:
    """Lines printed by ``process`` until one contains ``text``."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if text in line:
            return lines
    raise AssertionError(f"{text!r} not printed; got {lines}")


@pytest.mark.parametrize(
    ("command", "ready_line"),
    [
        (["kafka", "start", "--foreground"], "127.0.0.1:"),
        (
            [
                "up",
                "--registry-port",
                "FREE_PORT",
                "--collector-port",
                "FREE_PORT",
                "--serve-port",
                "FREE_PORT",
                "--dashboard-port",
                "FREE_PORT",
            ],
            "streamlearn is up",
        ),
    ],
)
def test_foreground_commands_stop_everything_on_sigterm(
    tmp_path: Path, cli_env: dict[str, str], command: list[str], ready_line: str
) -> None:
    data_dir = str(tmp_path / "kafka")
    port = str(free_port())
    command = [str(free_port()) if arg == "FREE_PORT" else arg for arg in command]
    with subprocess.Popen(
        [sys.executable, "-m", "streamlearn", *command, "--port", port, "--data-dir", data_dir],
        # The parts' logs, Faust's directories and the signing key stay in the test's dir.
        env={**cli_env, "STREAMLEARN_DATA_DIR": str(tmp_path / "data")},
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            lines = _wait_for_line(process, ready_line)
            if command[0] == "up":
                assert any("+ create model.state" in line for line in lines), lines
                assert any("schemas: 12 registered" in line for line in lines), lines
                assert any("agents: preprocess, sessionise" in line for line in lines), lines
                collector = next(line for line in lines if line.startswith("collector at "))
                event = {"event_type": "page_view", "user_id": "u", "app_version": "1"}
                request = urllib.request.Request(
                    collector.removeprefix("collector at "),
                    data=json.dumps(event).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=30) as response:
                    assert response.status == 202
            assert _cli("kafka", "status", "--data-dir", data_dir, env=cli_env).returncode == 0
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert _cli("kafka", "status", "--data-dir", data_dir, env=cli_env).returncode == 3


def _launched_pid(pid_path: Path, process: subprocess.Popen[str], timeout_s: float = 60) -> int:
    """The broker's pid once the command launched it (before it answers: the start goes on)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            return int(json.loads(pid_path.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            time.sleep(0.02)
    raise AssertionError(f"no broker launched; the command ended with {process.returncode}")


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_foreground_start_interrupted_while_starting_stops_its_broker(
    tmp_path: Path, cli_env: dict[str, str], stop_signal: signal.Signals
) -> None:
    """Ctrl-C (or SIGTERM) on `kafka start --foreground` before the broker answered left the
    broker running in its own session, with no word: the foreground command is meant to own
    its broker, and the next `start --foreground` then refused it."""
    data_dir = tmp_path / "kafka"
    port = str(free_port())
    command = ["kafka", "start", "--foreground", "--port", port, "--data-dir", str(data_dir)]
    with subprocess.Popen(
        [sys.executable, "-m", "streamlearn", *command],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # As from a terminal: a suite started as a background job ignores SIGINT, and its
        # children inherit that (CI116: the command never heard the Ctrl-C).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    ) as process:
        try:
            broker = _launched_pid(data_dir / "kafka.pid", process)
            process.send_signal(stop_signal)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
    status = _cli("kafka", "status", "--data-dir", str(data_dir), env=cli_env)
    assert status.returncode == 3, status.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(broker, 0)


def test_foreground_start_of_a_running_broker_says_what_to_do(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    """It said only "this broker was not started by this process"."""
    data_dir = str(tmp_path / "kafka")
    port = str(free_port())
    started = _cli("kafka", "start", "--port", port, "--data-dir", data_dir, env=cli_env)
    assert started.returncode == 0, started.stderr
    try:
        again = _cli(
            "kafka", "start", "--foreground", "--port", port, "--data-dir", data_dir, env=cli_env
        )
        assert again.returncode == 1
        error = again.stderr.strip().splitlines()[-1]
        assert f"already running at 127.0.0.1:{port}" in error, error
        assert f"streamlearn kafka stop --data-dir {data_dir}" in error, error
        # The broker someone else started is left as it was.
        assert _cli("kafka", "status", "--data-dir", data_dir, env=cli_env).returncode == 0
    finally:
        _cli("kafka", "stop", "--data-dir", data_dir, env=cli_env)
