"""A server whose port another process holds stops with one line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from streamlearn.settings import Settings

SERVERS = {
    "collector": ["collector", "serve", "--port"],
    "worker": ["serve", "--port"],
    "workers": ["serve", "--workers", "2", "--port"],
    "worker-metrics": ["serve", "--port", "0", "--metrics-port"],
    "registry": ["registry", "serve", "--port"],
    "dashboard": ["dashboard", "--port"],
    "agents": [
        "agents",
        "run",
        "--only",
        "preprocess",
        "--group",
        "streamlearn-preprocess",
        "--metrics-port",
    ],
    "archive": ["archive", "run", "--metrics-port"],
}


@pytest.mark.parametrize("command", list(SERVERS.values()), ids=list(SERVERS))
def test_a_port_in_use_is_one_line_and_exit_1(
    system_settings: Settings, command: list[str], tmp_path: Path
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            **os.environ,
            "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
            "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
            "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
            "STREAMLEARN_MODEL_SIGNING_KEY": "port-test-signing-key",
            "STREAMLEARN_DATA_DIR": str(tmp_path),
        }
        answer = subprocess.run(
            [sys.executable, "-m", "streamlearn", *command, str(port)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert answer.returncode == 1, answer.stderr[-2000:]
    assert "Traceback" not in answer.stderr, answer.stderr[-2000:]
    last = answer.stderr.strip().splitlines()[-1]
    assert last.startswith("streamlearn: error: "), last
    assert f"('127.0.0.1', {port}): address already in use" in last
    assert "choose another port" in last


SAID = {"collector": "collector on http://127.0.0.1:", "registry": "schema registry on http://127.0.0.1:",
        "agents": "metrics and probes on http://127.0.0.1:"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SAID))
def test_port_0_says_the_port_the_system_chose(
    system_settings: Settings, name: str, tmp_path: Path
) -> None:
    """``--port 0`` (any free port) printed ``:0``: nobody could find the server."""
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": system_settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": system_settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": system_settings.topic_prefix,
        "STREAMLEARN_DATA_DIR": str(tmp_path),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", *SERVERS[name], "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = ""
        for _ in range(5):
            line = server.stdout.readline()
            if SAID[name] in line:
                break
        assert SAID[name] in line, line
        port = int(line.split(SAID[name])[1].split("/")[0].split(" ")[0])
        assert port != 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as answer:
            assert answer.status == 200
    finally:
        server.terminate()
        server.communicate(timeout=60)
