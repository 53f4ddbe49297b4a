from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from typer.testing import CliRunner

from streamlearn import cli
from streamlearn.cli import app
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.settings_table import settings_table

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_readme_configuration_table_is_generated_from_settings() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert settings_table() in readme, "README is stale: run scripts/update_readme_config.py"


def test_config_docs_prints_the_table() -> None:
    result = CliRunner().invoke(app, ["config", "docs"])
    assert result.exit_code == 0
    assert result.output == settings_table()


def test_missing_java_is_one_line_with_what_to_do(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),
        "HOME": str(tmp_path),
        "STREAMLEARN_CACHE_DIR": str(tmp_path / "cache"),
        "STREAMLEARN_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "streamlearn", "kafka", "start", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamlearn: error: no Java runtime found")
    assert "docker compose -f docker-compose.kafka.yml up -d" in lines[0]
    # Java is checked before anything is downloaded.
    assert not (tmp_path / "cache").exists()


def test_invalid_topology_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("version: 1\ntopics:\n  - name: x\n    colour: blue\n")
    result = subprocess.run(
        [sys.executable, "-m", "streamlearn", "topics", "diff", "--file", str(bad)],
        env={**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"{bad}:4: topics.0.colour: unknown field" in result.stderr


def test_status_needs_neither_java_nor_jars(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),
        "HOME": str(tmp_path),
        "STREAMLEARN_CACHE_DIR": str(tmp_path / "cache"),
        "STREAMLEARN_DATA_DIR": str(tmp_path / "data"),
    }
    for command, code, output in (("status", 3, "not running"), ("stop", 0, "not running")):
        result = subprocess.run(
            [sys.executable, "-m", "streamlearn", "kafka", command],
            env=env, capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert (result.returncode, result.stdout.strip()) == (code, output), result.stderr
    assert not (tmp_path / "cache").exists(), "nothing downloaded to read a pid file"


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (
            KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata")),
            "streamlearn: error: Kafka: Failed to get metadata (is the broker running, and "
            "STREAMLEARN_KAFKA_BOOTSTRAP (or --bootstrap-servers) its address?)\n",
        ),
        (
            TimeoutError(),
            "streamlearn: error: timed out waiting for an answer (from Kafka, usually: is the "
            "broker running, and STREAMLEARN_KAFKA_BOOTSTRAP (or --bootstrap-servers) its "
            "address?)\n",
        ),
    ],
)
def test_an_unreachable_broker_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    raised: Exception,
    said: str,
) -> None:
    """`topics diff`, `topics apply`, `replay verify`, `replay reset` and `replay drop`
    against a broker that is not there ended in a Python traceback after 30 s (found by
    running each command with STREAMLEARN_KAFKA_BOOTSTRAP=127.0.0.1:9)."""

    def command(args: list[str] | None = None) -> None:
        raise raised

    monkeypatch.setattr(cli, "app", command)
    monkeypatch.setattr("streamlearn.orphan_watch.stop_when_orphaned", lambda: None)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err == said


@pytest.mark.parametrize("command", ["start", "stop"])
def test_a_data_directory_that_is_a_file_is_one_line(tmp_path: Path, command: str) -> None:
    a_file = tmp_path / "afile"
    a_file.write_text("")
    args = ["--port", "39555"] if command == "start" else []
    result = subprocess.run(
        [sys.executable, "-m", "streamlearn", "kafka", command, "--data-dir", str(a_file), *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamlearn: error: ")
    assert str(a_file) in lines[0]


def test_commands_that_answer_and_exit_keep_librdkafkas_lines_off_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the broker away, `topics diff` printed ~580 librdkafka reconnection lines in its
    30 s before the one line saying what is wrong; servers and agents keep them (a log)."""
    from streamlearn import kafka_clients
    from streamlearn.cli_common import command_settings

    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)
    settings = command_settings(long_running=True)
    assert kafka_clients.confluent_config(settings)["log_level"] == kafka_clients.LOG_NOTICE
    settings = command_settings()
    assert kafka_clients.confluent_config(settings)["log_level"] == kafka_clients.LOG_CRITICAL


def test_a_topology_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    from streamlearn.topology.exceptions import TopologyError
    from streamlearn.topology.loader import load_topology

    path = tmp_path / "topics.yaml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(TopologyError, match=f"cannot read topology file {path}: not UTF-8"):
        load_topology(path)


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
            "Name or service not known: a host name or address that does not resolve "
            "(--host, or an address setting)",
        ),
        (
            FileNotFoundError(2, "No such file or directory", "/proc/nope/kafka"),
            "No such file or directory: /proc/nope/kafka (a directory on the way is missing)",
        ),
    ],
)
def test_a_host_that_does_not_resolve_and_a_missing_directory_are_one_line(
    error: OSError, line: str
) -> None:
    """Found by a new user as tracebacks: `serve --host 999.1.1.1` (socket.gaierror),
    `kafka start --data-dir /proc/nope` (FileNotFoundError)."""
    from streamlearn.cli_errors import one_line_error

    assert one_line_error(error) == line


def test_an_agents_metrics_host_that_does_not_resolve_is_named() -> None:
    """Found by a new user: `agents run --metrics-host 999.1.1.1` ended in a traceback
    saying "unknown error -2" (a resolver's code read as an errno)."""
    from prometheus_client import CollectorRegistry

    from streamlearn.ports import free_port
    from streamlearn.runtime.health import WorkerHealth, serve_health

    health = WorkerHealth(None)  # type: ignore[arg-type]
    with pytest.raises(OSError, match="not an address of this machine") as refused:
        serve_health(health, CollectorRegistry(), "999.1.1.1", free_port())
    assert "unknown error" not in str(refused.value)
    assert "'999.1.1.1'" in str(refused.value)


@pytest.mark.parametrize(
    "args",
    [
        ["agents", "run", "--only", "preprocess", "--group", ""],
        ["agents", "run", "--group", "two words"],
        ["archive", "run", "--group", ""],
        ["up", "--simulate", "--seed", "-1"],
        ["simulate", "--seed", "-1"],
    ],
)
def test_a_group_or_seed_no_part_could_use_is_refused_before_anything_starts(
    args: list[str],
) -> None:
    """Found by a new user: `--group ''` was Faust's traceback ("App requires an id!");
    `up --simulate --seed -1` started the whole system, then failed in numpy."""
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--group'" in result.output or "'--seed'" in result.output


@pytest.mark.parametrize("only", ["monitor", "preprocess", "learner,monitor"])
def test_other_agents_than_the_default_ones_need_a_group_of_their_own(only: str) -> None:
    """Found by a new user following docs/monitoring.md: `agents run` and `agents run
    --only monitor` both joined `streamlearn-agents`; Faust's assignor gave the monitor's
    worker 3 of the 6 partitions of telemetry.events (and the pipeline worker half of the
    monitor's inputs), and each committed offsets there for agents it does not run:
    preprocess never read those events, the monitor judged half the traffic."""
    result = CliRunner().invoke(app, ["agents", "run", "--only", only])
    assert result.exit_code == 1, result.output
    assert "--group streamlearn-" in result.output
    assert "must run the same agents" in result.output


def test_the_default_agents_named_in_any_order_keep_the_default_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamlearn.runtime import worker as worker_module

    groups: list[str] = []

    def refuse(settings: object, steps: object, *, group: str) -> None:
        groups.append(group)
        raise RuntimeConfigurationError("stop here")

    monkeypatch.setattr(worker_module, "create_faust_app", refuse)
    # The learner's key is checked before the worker is made.
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "ab" * 32)
    only = "learner,preprocess,label-join,sessionise"
    for args in (["agents", "run"], ["agents", "run", "--only", only]):
        CliRunner().invoke(app, args)
    assert groups == ["streamlearn-agents", "streamlearn-agents"]


def test_an_agents_worker_keeps_its_own_stdout_and_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a new user: with Faust's redirect every write to stderr became a WARNING
    log line, so a thread's traceback at shutdown came out one caret per line."""
    import types

    import faust

    from streamlearn.runtime import group_settings, partition_growth
    from streamlearn.runtime import worker as worker_module

    made: dict[str, Any] = {}

    class Worker:
        def __init__(self, app: object, **options: Any) -> None:
            made.update(options)

        def execute_from_commandline(self) -> None:
            made["ran"] = True

    app_stub = types.SimpleNamespace(conf=types.SimpleNamespace(id="g"))
    monkeypatch.setattr(faust, "Worker", Worker)
    runtime_stub = types.SimpleNamespace(
        app=app_stub, started_partitions={}, input_topics=lambda: frozenset()
    )
    monkeypatch.setattr(worker_module, "create_faust_app", lambda *a, **k: runtime_stub)
    # No broker here to describe the group at (runtime/group_settings.py), nor to watch
    # its topics' partition counts at (runtime/partition_growth.py).
    monkeypatch.setattr(group_settings, "watch_group_settings", lambda *a: None)
    monkeypatch.setattr(partition_growth, "stop_when_partitions_grow", lambda *a: None)
    result = CliRunner().invoke(
        app, ["agents", "run", "--only", "preprocess", "--group", "streamlearn-preprocess"]
    )
    assert result.exit_code == 0, result.output
    assert made["ran"]
    assert made["redirect_stdouts"] is False


def test_a_registry_that_is_not_there_says_how_to_start_one() -> None:
    """Found by a new user following the replay docs after `up` had stopped: "registry
    http://127.0.0.1:8081 unreachable: [Errno 111] Connection refused", and nothing said
    that `up` had stopped its registry or how to run one."""
    from streamlearn.cli_errors import one_line_error
    from streamlearn.serde import RegistryUnavailableError

    line = one_line_error(
        RegistryUnavailableError("registry http://127.0.0.1:8081 unreachable: [Errno 111] ...")
    )
    assert line is not None
    assert line.startswith("registry http://127.0.0.1:8081 unreachable: [Errno 111] ... (")
    assert "`streamlearn registry serve`" in line
    assert "STREAMLEARN_SCHEMA_REGISTRY_URL" in line


@pytest.mark.parametrize(
    "code",
    ["TOPIC_AUTHORIZATION_FAILED", "GROUP_AUTHORIZATION_FAILED", "CLUSTER_AUTHORIZATION_FAILED"],
)
def test_a_refusal_by_the_brokers_acls_is_said_as_one(code: str) -> None:
    """Found by a new user: `topics apply` as a part's Kafka user said "Topic authorization
    failed. (is the broker running, and STREAMLEARN_KAFKA_BOOTSTRAP ... its address?)":
    the broker was running, and had answered; the user lacked the ACLs."""
    from confluent_kafka import KafkaError, KafkaException

    from streamlearn.cli_errors import BROKER_HINT, one_line_error

    error = KafkaError(getattr(KafkaError, code), "Topic authorization failed.")
    line = one_line_error(KafkaException(error))
    assert line is not None
    assert BROKER_HINT not in line
    assert line.startswith("Kafka: Topic authorization failed. (")
    assert "ACLs" in line
    assert "streamlearn acls plan" in line


def test_a_data_directory_that_is_a_file_is_named_not_a_path_under_it(tmp_path: Path) -> None:
    """Found by a new user: with STREAMLEARN_DATA_DIR a file, `up` said "Not a directory:
    .../afile/kafka/kafka.pid (a directory is expected there, not a file)": the path in
    the way is `afile`."""
    from streamlearn.cli_errors import one_line_error

    in_the_way = tmp_path / "afile"
    in_the_way.write_text("")
    error = NotADirectoryError(20, "Not a directory", str(in_the_way / "kafka" / "kafka.pid"))
    assert one_line_error(error) == (
        f"Not a directory: {in_the_way} is a file, where a directory is expected "
        f"(for {in_the_way / 'kafka' / 'kafka.pid'})"
    )


def test_a_key_file_kafka_cannot_load_names_its_password_setting_too() -> None:
    """Found by a new user: a wrong or missing STREAMLEARN_KAFKA_SSL_KEY_PASSWORD was blamed
    on the key file alone (librdkafka says "PEM lib" for both)."""
    from confluent_kafka import KafkaError, KafkaException

    from streamlearn.cli_errors import one_line_error

    error = KafkaException(
        KafkaError(
            KafkaError._INVALID_ARG,
            "Failed to create admin client: ssl.key.location failed: error:0A080009:SSL "
            "routines::PEM lib",
        )
    )
    line = one_line_error(error)
    assert line is not None
    assert "STREAMLEARN_KAFKA_SSL_KEYFILE" in line
    assert "STREAMLEARN_KAFKA_SSL_KEY_PASSWORD" in line


def test_an_object_store_refusal_leaves_out_credentials_written_into_the_root() -> None:
    """Found by a new user: `archive ls --root s3://AKIAUSER:SUPERSECRET2@nobkt/sl` printed
    botocore's `Invalid bucket name "AKIAUSER:SUPERSECRET2@nobkt"`, though the docs promise
    credentials are never logged."""
    from botocore.exceptions import ParamValidationError

    from streamlearn.cli_errors import one_line_error

    line = one_line_error(
        ParamValidationError(report='Invalid bucket name "AKIAUSER:SUPERSECRET2@nobkt": ...')
    )
    assert line is not None
    assert "SUPERSECRET2" not in line
    assert "AKIAUSER" not in line
    assert 'Invalid bucket name "***@nobkt"' in line
