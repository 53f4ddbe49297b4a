"""`streamlearn up` supervises its parts: a part that dies is reported and restarted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streamlearn.kafka_local import free_port

DURATION_S = 40


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _start_up(
    kafka_bootstrap: str, prefix: str, data_dir: Path, serve_port: int, *arguments: str
) -> subprocess.Popen[str]:
    """`streamlearn up` on the session's broker; progress on stderr, --json output on stdout."""
    env = {**os.environ, "STREAMLEARN_TOPIC_PREFIX": prefix, "STREAMLEARN_DATA_DIR": str(data_dir)}
    env.pop("STREAMLEARN_SCHEMA_REGISTRY_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "up", "--bootstrap-servers", kafka_bootstrap,
         "--registry-port", str(free_port()), "--collector-port", str(free_port()),
         "--serve-port", str(serve_port), "--dashboard-port", str(free_port()), "--json",
         *arguments],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _lines_until_up(up: subprocess.Popen[str]) -> list[str]:
    assert up.stderr is not None
    lines: list[str] = []
    for line in up.stderr:
        lines.append(line)
        if "streamlearn is up" in line:
            return lines
    raise AssertionError(f"up did not come up: {lines}")


def test_a_killed_part_is_reported_and_restarted(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    serve_port = free_port()
    with _start_up(
        kafka_bootstrap, unique_name("") + ".", tmp_path, serve_port, "--duration", str(DURATION_S)
    ) as up:
        lines = _lines_until_up(up)
        pids = {
            name: int(pid)
            for name, _, pid in (
                line.strip().partition(": pid ") for line in lines if ": pid " in line
            )
        }
        assert set(pids) >= {"preprocess", "learner", "collector", "serve"}, lines
        os.kill(pids["serve"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not _healthy(f"http://127.0.0.1:{serve_port}/healthz"):
            assert time.monotonic() < deadline, "the worker was not restarted"
            time.sleep(0.2)
        output, errors = up.communicate(timeout=DURATION_S + 120)
    summary = json.loads(output.strip().splitlines()[-1])
    assert up.returncode == 1  # a crash fails the run's checks...
    # Said as the summary says it (it said "exited with code -9"; found by a new user).
    assert "serve stopped: ended by SIGKILL" in "".join(lines) + errors
    serve = summary["processes"]["serve"]
    assert serve["crashes"] == 1
    assert serve["crashed_with"] == ["ended by SIGKILL"]
    assert serve["starts"] == 2
    assert serve["exit_code"] == 0  # ...and the restarted worker stopped cleanly
    assert serve["pid"] != pids["serve"]
    failed = {c["name"]: c["detail"] for c in summary["checks"] if not c["passed"]}
    assert failed == {"no part crashed": "serve (ended by SIGKILL)"}, errors  # log tails
    assert (tmp_path / "logs" / "serve.log").read_text().count("--- start") == 2


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited; its new parent reaps it


def test_parts_stop_themselves_when_up_is_killed(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    with _start_up(kafka_bootstrap, unique_name("") + ".", tmp_path, free_port()) as up:
        lines = _lines_until_up(up)
        pids = [int(line.rpartition(": pid ")[2]) for line in lines if ": pid " in line]
        registry_pid = int(next(line for line in lines if "(pid " in line).split("(pid ")[1][:-2])
        up.kill()  # no chance to stop its parts
        up.wait()
        # The five agents, the archive, the collector, the prediction worker, the dashboard.
        assert len(pids) == 9, lines
        deadline = time.monotonic() + 60
        while any(_running(pid) for pid in [*pids, registry_pid]):
            assert time.monotonic() < deadline, [p for p in pids if _running(p)]
            time.sleep(0.5)
    # They stopped cleanly, not by a signal's default action: Faust and aiohttp log it.
    assert "Stopping" in (tmp_path / "logs" / "learner.log").read_text()


def _processes_with(marker: str) -> list[int]:
    """Pids of processes whose environment contains ``marker`` (this test's data dir)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes() and _running(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except (OSError, ValueError):
            continue
    return found


def test_ctrl_c_while_starting_stops_at_once_and_leaves_nothing_running(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    with _start_up(kafka_bootstrap, unique_name("") + ".", tmp_path, free_port()) as up:
        assert up.stderr is not None
        for line in up.stderr:
            if "schema registry at" in line:  # the registry is up; the parts are not yet
                break
        up.send_signal(signal.SIGINT)
        began = time.monotonic()
        output, errors = up.communicate(timeout=60)
    assert up.returncode == 0, errors
    assert "stopping before everything was up" in errors
    assert time.monotonic() - began < 30  # not after the parts' readiness waits
    assert not output  # no summary: nothing was running yet
    deadline = time.monotonic() + 30
    while leftovers := _processes_with(f"STREAMLEARN_DATA_DIR={tmp_path}"):
        assert time.monotonic() < deadline, f"parts outlived up: {leftovers}"
        time.sleep(0.5)


def _brokers_of(data_dir: Path) -> list[int]:
    """Pids of embedded brokers (kafka.Kafka JVMs) whose config lives under ``data_dir``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in args and str(data_dir).encode() in b" ".join(args):
            pid = int(cmdline.parent.name)
            if _running(pid):
                found.append(pid)
    return found


def _embedded_env(name: str, data_dir: Path) -> dict[str, str]:
    """The environment of an `up` that runs its embedded broker in ``data_dir``."""
    env = {
        **os.environ,
        "STREAMLEARN_TOPIC_PREFIX": name + ".",
        "STREAMLEARN_DATA_DIR": str(data_dir),
    }
    for variable in ("STREAMLEARN_KAFKA_BOOTSTRAP", "STREAMLEARN_SCHEMA_REGISTRY_URL"):
        env.pop(variable, None)
    return env


def test_a_sigkilled_up_stops_the_broker_it_started(
    unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    env = _embedded_env(unique_name(""), tmp_path)
    with subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "up", "--port", str(free_port()),
         "--registry-port", str(free_port()), "--collector-port", str(free_port()),
         "--serve-port", str(free_port()), "--dashboard-port", str(free_port()), "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) as up:  # fmt: skip
        _lines_until_up(up)
        [broker] = _brokers_of(tmp_path)
        up.kill()  # no chance to stop anything
        up.wait()
        deadline = time.monotonic() + 60
        while _running(broker):
            assert time.monotonic() < deadline, "the broker outlived up"
            time.sleep(0.5)
    # Stopped by SIGTERM (Kafka's clean shutdown), not killed.
    server_log = next(tmp_path.rglob("server.log")).read_text()
    assert "shut down completed" in server_log


def test_a_broker_running_before_up_is_used_and_left_running(
    unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    # The user's own `streamlearn kafka start`: `up` finds it in the data directory, uses it
    # and, not having started it, leaves it running for whatever else uses it.
    env = _embedded_env(unique_name(""), tmp_path)
    kafka_port = free_port()
    streamlearn = [sys.executable, "-m", "streamlearn"]
    subprocess.run([*streamlearn, "kafka", "start", "--port", str(kafka_port)],
                   env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
    try:
        [broker] = _brokers_of(tmp_path)
        up = subprocess.run(
            [*streamlearn, "up", "--port", str(kafka_port), "--registry-port", str(free_port()),
             "--collector-port", str(free_port()), "--serve-port", str(free_port()),
             "--dashboard-port", str(free_port()), "--duration", "2", "--json"],
            env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
        assert "Kafka stopped" not in up.stderr
        assert "left running" in up.stderr
        assert _running(broker)
        summary = json.loads(up.stdout)
        assert summary["processes"]["kafka"]["state"] == "left running"
        assert summary["processes"]["kafka"]["pid"] == broker
    finally:
        subprocess.run([*streamlearn, "kafka", "stop"], env=env, check=False, timeout=120)


def test_up_on_a_taken_port_says_why_and_not_that_it_stopped_a_broker(
    unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """`up` said "Kafka stopped (killed)" about a broker it never started."""
    env = _embedded_env(unique_name(""), tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        up = subprocess.run(
            [sys.executable, "-m", "streamlearn", "up", "--port", str(taken),
             "--registry-port", str(free_port()), "--collector-port", str(free_port()),
             "--serve-port", str(free_port()), "--dashboard-port", str(free_port()),
             "--duration", "2"],
            env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    assert up.returncode == 1, up.stderr
    assert f"port {taken} on 127.0.0.1 is already in use" in up.stderr
    assert "Kafka stopped" not in up.stdout + up.stderr


def test_ctrl_c_during_the_drain_stops_at_once(
    kafka_bootstrap: str, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    """Once the traffic stopped, Ctrl-C went unheard: a chaos run's drain (45 s, then until
    every agent caught up, then the invariants) ran to its end, a minute after the Ctrl-C,
    with no word that it had been pressed."""
    chaos = ["--simulate", "--chaos", "--chaos-fault", "kill:collector", "--chaos-interval", "5"]
    with _start_up(
        kafka_bootstrap, unique_name("") + ".", tmp_path, free_port(), *chaos, "--duration", "15"
    ) as up:
        assert up.stderr is not None
        lines = []
        for line in up.stderr:
            lines.append(line)
            if "waiting for the pipeline to drain" in line:
                break
        assert "Ctrl-C stops at once" in lines[-1], lines[-1]
        up.send_signal(signal.SIGINT)
        began = time.monotonic()
        output, errors = up.communicate(timeout=180)
    stopped_after = time.monotonic() - began
    assert up.returncode == 0, errors
    assert "Ctrl-C during the drain: stopping without the summary" in errors
    assert stopped_after < 30, errors  # the parts' stop, not the drain
    assert not output  # no summary: its figures and checks would judge a drain cut short
    deadline = time.monotonic() + 30
    while leftovers := _processes_with(f"STREAMLEARN_DATA_DIR={tmp_path}"):
        assert time.monotonic() < deadline, f"parts outlived up: {leftovers}"
        time.sleep(0.5)
