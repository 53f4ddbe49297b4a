"""What the embedded broker's Java processes can show to other users of the machine: their
command lines (``ps -ef``, ``/proc/<pid>/cmdline``, readable by every local user) and their
environments. No secret may be in either."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streamlearn.kafka_local import broker as broker_module
from streamlearn.kafka_local.broker import EmbeddedKafka
from streamlearn.kafka_local.config import BrokerConfig
from streamlearn.kafka_local.java import JavaRuntime
from streamlearn.kafka_local.secure import ensure_secure_material

JAVA = JavaRuntime(Path("/usr/bin/java"), 17)
SECRET_ENVIRONMENT = {
    "STREAMLEARN_SERVE_API_TOKENS": '["api-token-0123456789abcdef"]',
    "STREAMLEARN_COLLECTOR_WRITE_KEYS": '{"write-key-0123456789abcdef": "shop"}',
    "STREAMLEARN_MODEL_SIGNING_KEY": "signing-key-0123456789abcdef",
    "STREAMLEARN_PSEUDONYMISATION_KEY": "pseudonym-key-0123456789abcdef",
    "STREAMLEARN_KAFKA_SASL_PASSWORD": "kafka-password-0123456789",
}


class Recorded:
    """The commands and environments the broker module ran Java with, and the argument
    files those commands named, read while the command ran (they may be gone after)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.environments: list[dict[str, str] | None] = []
        self.argument_files: dict[Path, tuple[str, int]] = {}

    def note(self, command: list[str], env: dict[str, str] | None) -> None:
        self.commands.append(command)
        self.environments.append(env)
        for argument in command:
            if argument.startswith("@"):
                path = Path(argument[1:])
                self.argument_files[path] = (path.read_text(), stat.S_IMODE(path.stat().st_mode))


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Recorded:
    seen = Recorded()

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.note(command, kwargs.get("env"))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(broker_module.subprocess, "run", run)
    for name, value in SECRET_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return seen


def _secure_broker(tmp_path: Path) -> tuple[EmbeddedKafka, dict[str, str]]:
    material = ensure_secure_material(tmp_path, "127.0.0.1")
    config = BrokerConfig(tmp_path, port=9092, controller_port=9093, secure=material)
    config.log_dir.mkdir(parents=True)
    config.server_log_dir.mkdir(parents=True)
    return EmbeddedKafka(config, classpath=[tmp_path / "kafka.jar"]), material.passwords


def test_formatting_the_secure_storage_puts_no_scram_password_on_the_command_line(
    tmp_path: Path, recorded: Recorded
) -> None:
    """The SCRAM users go to ``kafka-storage format`` in a private argument file (Java's
    ``@file``), gone once the tool ran: on its command line, any local user read every
    part's password and the operator's while the JVM started."""
    kafka, passwords = _secure_broker(tmp_path)
    kafka._format_storage(JAVA)
    (command,) = recorded.commands
    for password in passwords.values():
        assert password not in " ".join(command)
    (argument_file,) = recorded.argument_files
    text, mode = recorded.argument_files[argument_file]
    assert mode == 0o600
    for user, password in passwords.items():
        assert f'"SCRAM-SHA-512=[name={user},password={password}]"' in text
    assert "kafka.tools.StorageTool" in text, "the main class opens the file's arguments"
    assert not argument_file.exists(), "removed once the tool ran"


def test_the_brokers_java_processes_hold_no_streamlearn_setting(
    tmp_path: Path, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JVMs (the storage tool and the broker) read none of streamlearn's settings, so
    they get none of its secrets: under ``up``, the broker held every API token, write key
    and the pseudonymisation key in its environment, which the docs promise only the parts
    that use them hold."""
    launched: list[dict[str, str] | None] = []

    class Process:
        pid = 4242

        def __init__(self, command: list[str], **kwargs: Any) -> None:
            launched.append(kwargs.get("env"))

    monkeypatch.setattr(broker_module.subprocess, "Popen", Process)
    monkeypatch.setattr(broker_module, "find_java", lambda: JAVA)
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xss2m")
    kafka, _ = _secure_broker(tmp_path)
    kafka._format_storage(JAVA)
    kafka.launch()
    for environment in [*recorded.environments, *launched]:
        assert environment is not None, "not the parent's environment"
        assert not [name for name in environment if name.startswith("STREAMLEARN_")]
        assert environment["JAVA_TOOL_OPTIONS"] == "-Xss2m", "the rest is kept"
