"""A server whose port another process holds stops with one line, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streamlearn.settings import Settings

SERVERS = {
    "collector": ["collector", "serve", "--port"],
    "worker": ["serve", "--port"],
    "workers": ["serve", "--workers", "2", "--port"],
    "registry": ["registry", "serve", "--port"],
    "dashboard": ["dashboard", "--port"],
    "agents": ["agents", "run", "--only", "preprocess", "--metrics-port"],
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
            "STREAMLEARN_MODEL_SIGNING_KEY": "port-test-key",
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
