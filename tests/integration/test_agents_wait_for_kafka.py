"""`agents run` with a well-formed but unreachable broker says early that it waits for
Kafka at that address (found by an operator: 32 s of silence, then an error without the
address)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

UNREACHABLE_PORT = 24632
"""In this test's range; nothing listens there (checked below)."""


def _nothing_listens(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_agents_run_says_it_waits_for_an_unreachable_broker_before_giving_up(
    tmp_path: Path,
) -> None:
    assert _nothing_listens(UNREACHABLE_PORT)
    bootstrap = f"127.0.0.1:{UNREACHABLE_PORT}"
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_MODEL_SIGNING_KEY": "wait-test-signing-key-of-32-chars!",
        "STREAMLEARN_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "agents", "run"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert worker.stderr is not None
        deadline = time.monotonic() + 120
        # Until the worker's first word about Kafka, or its end (it gives up after 30 s).
        for line in worker.stderr:
            lines.append(line.rstrip("\n"))
            if "Kafka" in line or time.monotonic() > deadline:
                break
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stderr is not None:
            worker.stderr.close()
    said = "\n".join(lines)
    # Its first word about Kafka is the wait, naming the address and the setting, not the
    # error after the metadata request's 30 s.
    assert lines, "the worker said nothing"
    assert lines[-1].endswith(
        f"waiting for Kafka at {bootstrap} (STREAMLEARN_KAFKA_BOOTSTRAP or "
        "--bootstrap-servers sets it)"
    ), said
