"""`agents run` and `up --bootstrap-servers` with a well-formed but unreachable broker say
early that they wait for Kafka at that address (found by an operator: 30 s of silence,
then an error without the address)."""

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


BOOTSTRAP = f"127.0.0.1:{UNREACHABLE_PORT}"
UP_PORTS = ("--registry-port", "24637", "--collector-port", "24638", "--serve-port", "24639",
            "--dashboard-port", "24640")  # fmt: skip


def test_agents_run_says_it_waits_for_an_unreachable_broker_before_giving_up(
    tmp_path: Path,
) -> None:
    _first_word_about_kafka_is_the_wait(["agents", "run"], tmp_path)


def test_up_with_an_unreachable_broker_says_it_waits_for_it(tmp_path: Path) -> None:
    _first_word_about_kafka_is_the_wait(["up", "--bootstrap-servers", BOOTSTRAP, *UP_PORTS],
                                        tmp_path)  # fmt: skip


def test_registry_serve_says_it_waits_for_an_unreachable_broker(tmp_path: Path) -> None:
    _first_word_about_kafka_is_the_wait(["registry", "serve", "--port", "24641"], tmp_path)


def _first_word_about_kafka_is_the_wait(command: list[str], tmp_path: Path) -> None:
    assert _nothing_listens(UNREACHABLE_PORT)
    bootstrap = BOOTSTRAP
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_MODEL_SIGNING_KEY": "wait-test-signing-key-of-32-chars!",
        "STREAMLEARN_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", *command],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert worker.stdout is not None
        deadline = time.monotonic() + 120
        # Both outputs (`up` reports on stdout, a worker logs on stderr), until the end of
        # its first line about Kafka (a console may wrap it),
        # or its end (it gives up after 30 s).
        for line in worker.stdout:
            lines.append(line.rstrip("\n"))
            if "sets it)" in line or "error:" in line or time.monotonic() > deadline:
                break
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()
    said = " ".join(lines)
    # Its first word about Kafka is the wait, naming the address and the setting, not the
    # error after the metadata request's 30 s.
    assert "error:" not in said, said
    assert said.endswith(
        f"waiting for Kafka at {bootstrap} (STREAMLEARN_KAFKA_BOOTSTRAP or "
        "--bootstrap-servers sets it)"
    ), said
