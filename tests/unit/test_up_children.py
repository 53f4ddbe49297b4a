"""The supervisor with real child processes (tiny Python programs, no broker)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from streamlearn.exceptions import StreamlearnError
from streamlearn.kafka_local import free_port
from streamlearn.runtime.broker_probe import KAFKA_UNREACHABLE
from streamlearn.runtime.partition_growth import PARTITIONS_GREW_EXIT
from streamlearn.stacks_on_signal import STACKS_SIGNAL
from streamlearn.up import children as children_module
from streamlearn.up.children import ChildSpec, Crash, Supervisor

PYTHON = (sys.executable, "-c")
SERVES_UNTIL_SIGTERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("serving", flush=True)
while True:
    time.sleep(0.05)
"""
IGNORES_SIGTERM = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("stubborn", flush=True)
while True:
    time.sleep(0.05)
"""


def _spec(
    name: str, program: str, stop_timeout_s: float = 20.0, stacks_signal: int | None = None
) -> ChildSpec:
    return ChildSpec(
        name, (program,), program=PYTHON, stop_timeout_s=stop_timeout_s,
        stacks_signal=stacks_signal,
    )  # fmt: skip


async def _until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_a_crash_is_reported_with_its_log_tail_and_the_child_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(children_module, "RESTART_DELAY_MIN_S", 0.05)
    marker = tmp_path / "crashed-once"
    program = f"""
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
marker = pathlib.Path({str(marker)!r})
if not marker.exists():
    marker.touch()
    print("about to fail: the disk is full", flush=True)
    sys.exit(3)
print("second life", flush=True)
while True:
    time.sleep(0.05)
"""
    crashes: list[Crash] = []
    supervisor = Supervisor(tmp_path / "logs", crashes.append)
    (child,) = await supervisor.start([_spec("flaky", program)])
    await _until(lambda: child.starts == 2 and child.state == "running")
    assert [c.exit_code for c in crashes] == [3]
    assert crashes[0].name == "flaky"
    assert "about to fail: the disk is full" in crashes[0].log_tail
    assert "flaky stopped: exit code 3;" in crashes[0].describe()
    await _until(lambda: "second life" in (tmp_path / "logs" / "flaky.log").read_text())

    await supervisor.stop([])
    assert child.exit_code == 0
    assert child.exited_cleanly
    assert child.state == "stopped"
    assert len(child.crashes) == 1  # stopping is not a crash


async def test_stop_goes_group_by_group_and_kills_what_ignores_sigterm(tmp_path: Path) -> None:
    crashes: list[Crash] = []
    supervisor = Supervisor(tmp_path / "logs", crashes.append)
    polite, stubborn, last = await supervisor.start(
        [
            _spec("polite", SERVES_UNTIL_SIGTERM),
            _spec("stubborn", IGNORES_SIGTERM, stop_timeout_s=0.5),
            _spec("last", SERVES_UNTIL_SIGTERM),
        ]
    )
    # Each has set its SIGTERM handling once it printed (before, SIGTERM kills it: -15).
    for name, ready in (("polite", "serving"), ("stubborn", "stubborn"), ("last", "serving")):
        await _until(lambda n=name, r=ready: r in (tmp_path / "logs" / f"{n}.log").read_text())
    await supervisor.stop([("polite", "stubborn")])
    assert polite.exit_code == 0
    assert polite.exited_cleanly
    assert stubborn.killed
    assert stubborn.exit_code == -9
    assert not stubborn.exited_cleanly
    assert stubborn.unclean_stop == "did not stop within 0.5s: killed"
    assert polite.unclean_stop is None
    assert last.exit_code == 0
    assert crashes == []


HANGS_IN_ITS_STOP = """
import signal, sys, time
from streamlearn.stacks_on_signal import write_stacks_on_signal
write_stacks_on_signal()
def waits_for_a_flush_that_never_ends():
    while True:
        time.sleep(0.05)
signal.signal(signal.SIGTERM, lambda *_: waits_for_a_flush_that_never_ends())
print("serving", flush=True)
while True:
    time.sleep(0.05)
"""


async def test_a_child_stuck_in_its_stop_leaves_where_it_was_in_its_log(tmp_path: Path) -> None:
    # What a part was doing when it did not stop in time: the supervisor's SIGQUIT makes
    # its faulthandler (every command registers it) write each thread's stack.
    supervisor = Supervisor(tmp_path / "logs", lambda crash: None)
    spec = _spec("stuck", HANGS_IN_ITS_STOP, stop_timeout_s=0.5, stacks_signal=STACKS_SIGNAL)
    (stuck,) = await supervisor.start([spec])
    log = tmp_path / "logs" / "stuck.log"
    await _until(lambda: "serving" in log.read_text())
    await supervisor.stop([])
    assert stuck.killed
    assert stuck.exit_code == -9  # it went on after writing them
    assert stuck.unclean_stop == "did not stop within 0.5s: killed; where it was is in stuck.log"
    assert "in waits_for_a_flush_that_never_ends" in log.read_text()


@pytest.mark.parametrize(
    ("on_sigterm", "said"),
    [("sys.exit(4)", "exit code 4"), ("os.kill(os.getpid(), signal.SIGUSR1)", "ended by SIGUSR1")],
)
async def test_a_child_that_fails_as_it_stops_says_how(
    tmp_path: Path, on_sigterm: str, said: str
) -> None:
    program = f"""
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: {on_sigterm})
print("serving", flush=True)
while True:
    time.sleep(0.05)
"""
    supervisor = Supervisor(tmp_path / "logs", lambda crash: None)
    (failing,) = await supervisor.start([_spec("failing", program)])
    await _until(lambda: "serving" in (tmp_path / "logs" / "failing.log").read_text())
    await supervisor.stop([])
    assert not failing.killed
    assert failing.unclean_stop == said


async def test_a_child_that_never_gets_ready_fails_with_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor(tmp_path / "logs", lambda crash: None)
    spec = ChildSpec(
        "mute", (SERVES_UNTIL_SIGTERM,), program=PYTHON,
        ready_url="http://127.0.0.1:9/healthz", ready_timeout_s=1.0,
    )  # fmt: skip
    with pytest.raises(StreamlearnError, match="mute did not come up within 1s") as raised:
        await supervisor.start([spec])
    assert "serving" in str(raised.value)
    await supervisor.stop([])


def _ready_for_a_second(port: int, then: str) -> str:
    """A child whose ready URL answers 200 for a second, then 503 with status ``then``
    (it writes its stacks on SIGQUIT, as every streamlearn command does)."""
    return f"""
import http.server, json, signal, sys, time
from streamlearn.stacks_on_signal import write_stacks_on_signal
write_stacks_on_signal()
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
started = time.monotonic()
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ready = time.monotonic() - started < 1.0
        body = json.dumps({{"status": "ready" if ready else {then!r}}}).encode()
        self.send_response(200 if ready else 503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", {port}), Ready).serve_forever()
"""


async def test_a_child_that_stops_being_ready_is_killed_and_restarted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A part wedged after being ready (an agent stuck in its stores' recovery) answers its
    ready URL 503 for good: the supervisor kills it, reports why, and starts it again."""
    monkeypatch.setattr(children_module, "RESTART_DELAY_MIN_S", 0.05)
    monkeypatch.setattr(children_module, "READY_POLL_S", 0.1)
    port = free_port()
    program = _ready_for_a_second(port, "wedged")
    crashes: list[Crash] = []
    supervisor = Supervisor(tmp_path / "logs", crashes.append)
    spec = ChildSpec(
        "wedged", (program,), program=PYTHON, ready_url=f"http://127.0.0.1:{port}/readyz",
        stuck_after_s=0.5,
    )  # fmt: skip
    (child,) = await supervisor.start([spec])
    await _until(lambda: child.starts == 2 and child.state == "running", timeout_s=20.0)
    await supervisor.stop([("wedged",)])
    assert crashes[0].exit_code == -9
    assert crashes[0].stuck_s is not None
    assert crashes[0].stuck_s >= 0.5
    assert "killed: not ready for" in crashes[0].describe()
    # Where it was wedged went to its log before the kill.
    first_life = (tmp_path / "logs" / "wedged.log").read_text().split("--- start 2")[0]
    assert "(most recent call first):" in first_life
    assert "in serve_forever" in first_life


async def test_a_child_waiting_for_kafka_is_not_stuck(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not ready because its probe cannot reach Kafka: a restart would not bring the
    brokers back, so the supervisor leaves it running."""
    monkeypatch.setattr(children_module, "READY_POLL_S", 0.1)
    port = free_port()
    program = _ready_for_a_second(port, KAFKA_UNREACHABLE)
    crashes: list[Crash] = []
    supervisor = Supervisor(tmp_path / "logs", crashes.append)
    spec = ChildSpec(
        "cut-off", (program,), program=PYTHON, ready_url=f"http://127.0.0.1:{port}/readyz",
        stuck_after_s=0.5,
    )  # fmt: skip
    (child,) = await supervisor.start([spec])
    await asyncio.sleep(3.0)  # 2 s of "kafka unreachable", four times stuck_after_s
    assert child.starts == 1
    assert child.state == "running"
    await supervisor.stop([("cut-off",)])
    assert crashes == []


async def test_a_ready_url_answered_by_another_process_is_not_the_child_ready(
    tmp_path: Path,
) -> None:
    """CI once saw two agents given one metrics port: the second crashed on every restart
    ("address already in use") while the first answered its readiness probe, so `up`
    took it for ready and ran without it. A part's probe answer names its pid."""
    port = free_port()
    impostor = f"""
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({{"status": "ready", "pid": os.getpid()}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("impostor serving", flush=True)
HTTPServer(("127.0.0.1", {port}), Handler).serve_forever()
"""
    supervisor = Supervisor(tmp_path / "logs", lambda crash: None)
    (other,) = await supervisor.start([_spec("other", impostor)])
    await _until(lambda: "impostor serving" in (tmp_path / "logs" / "other.log").read_text())
    spec = ChildSpec(
        "shadowed", (SERVES_UNTIL_SIGTERM,), program=PYTHON,
        ready_url=f"http://127.0.0.1:{port}/readyz", ready_timeout_s=1.5,
    )  # fmt: skip
    with pytest.raises(StreamlearnError, match="shadowed did not come up") as raised:
        await supervisor.start([spec])
    assert f"answered by another process (pid {other.pid})" in str(raised.value)
    await supervisor.stop([])


@pytest.mark.parametrize(
    ("exit_code", "stuck_s", "ended"),
    [
        (1, None, "exit code 1"),
        (-9, None, "ended by SIGKILL"),
        (-9, 131.0, "ended by SIGKILL, not ready for 131s"),
        (-200, None, "exit code -200"),  # not a signal's number
    ],
)
def test_a_crash_says_how_the_process_ended(
    exit_code: int, stuck_s: float | None, ended: str
) -> None:
    """`up`'s summary lists it beside the part (the "no part crashed" check's detail), so
    a crash in CI says how without its log."""
    assert Crash("sessionise", exit_code, 0.0, (), stuck_s).ended == ended


async def test_a_worker_stopped_for_grown_partitions_is_restarted_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent worker whose topics grew stops with its own exit status
    (runtime/partition_growth.py) for its supervisor to start it on the new count."""
    monkeypatch.setattr(children_module, "RESTART_DELAY_MIN_S", 0.05)
    marker = tmp_path / "stopped-once"
    program = f"""
import pathlib, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
marker = pathlib.Path({str(marker)!r})
if not marker.exists():
    marker.touch()
    sys.exit({PARTITIONS_GREW_EXIT})
print("started on the new count", flush=True)
while True:
    time.sleep(0.05)
"""
    crashes: list[Crash] = []
    supervisor = Supervisor(tmp_path / "logs", crashes.append)
    (child,) = await supervisor.start([_spec("preprocess", program)])
    await _until(lambda: child.starts == 2 and child.state == "running")
    await _until(lambda: "new count" in (tmp_path / "logs" / "preprocess.log").read_text())
    assert [c.exit_code for c in crashes] == [PARTITIONS_GREW_EXIT]
    assert crashes[0].ended == (
        f"exit code {PARTITIONS_GREW_EXIT} (a topic of its grew partitions: "
        "restarted on the new count)"
    )
    # A restart the worker asked for is not a crash: `up` counts it apart and says so.
    assert crashes[0].planned
    assert child.crashes == []
    assert child.planned_restarts == crashes
    assert (
        crashes[0]
        .describe()
        .startswith("preprocess stopped to be restarted (planned): exit code 75")
    )
    assert "crashed" not in crashes[0].describe()
    await supervisor.stop([])
    assert child.exited_cleanly


@pytest.mark.parametrize(
    ("exit_code", "stuck_s", "planned"),
    [
        (PARTITIONS_GREW_EXIT, None, True),
        (1, None, False),
        (-9, None, False),
        (PARTITIONS_GREW_EXIT, 130.0, False),
    ],
)
def test_only_a_worker_stopped_for_grown_partitions_is_a_planned_restart(
    exit_code: int, stuck_s: float | None, planned: bool
) -> None:
    assert Crash("preprocess", exit_code, 0.0, (), stuck_s).planned is planned
