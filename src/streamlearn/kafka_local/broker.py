"""Run a single-node Apache Kafka (KRaft, broker and controller in one JVM) as a child process."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamlearn.kafka_local.config import BrokerConfig, log4j_properties, server_properties
from streamlearn.kafka_local.exceptions import BrokerStartError, EmbeddedKafkaError
from streamlearn.kafka_local.java import JavaRuntime, find_java
from streamlearn.kafka_local.java_arguments import argument_file, java_environment
from streamlearn.ports import bindable, ephemeral_range, free_port, self_connected

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
JVM_SIGTERM_EXIT = 143  # 128 + SIGTERM: the JVM's status after its shutdown hooks ran
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str | None
    answering: bool

    def describe(self) -> str:
        if not self.running:
            return "not running"
        state = "answering metadata requests" if self.answering else "not answering yet"
        return f"running (pid {self.pid}) at {self.bootstrap}, {state}"


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _port_taken(host: str, port: int) -> bool:
    """Whether the broker could not listen on ``port``: another process listens there, or
    holds it bound without listening (which answers no connection)."""
    # Kafka's server sockets set SO_REUSEADDR.
    return _port_in_use(host, port) or not bindable(host, port, reuse_address=True)


def _port_taken_reason(host: str, port: int) -> str:
    if self_connected(port):
        low, high = ephemeral_range()
        return (
            f"port {port} on {host} is held by a client's connection to itself: the port is "
            f"in this machine's ephemeral range ({low}-{high}), where clients take their own "
            "ports, and one retrying while nothing listened there took it; it frees within "
            f"about two minutes. Pass a --port below {low}"
        )
    return f"port {port} on {host} is already in use by another process; pass --port or stop it"


_LOG_LINE = re.compile(r"^\[[^]]+\] (?P<level>[A-Z]+) ")
_EXCEPTION_LINE = re.compile(r"^(Caused by: )?[\w.$]+(Exception|Error)\b")


def _cause(*paths: Path, lines: int = 6) -> str:
    """The lines of a failed start's logs that say why: its first errors (log lines at
    ERROR or FATAL, exception headlines and their causes, each once; the first comes
    first, the shutdown's noise after), else the last lines of the first log."""
    found: list[str] = []
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            logged = _LOG_LINE.match(line)
            said = line[logged.end() :] if logged else line.strip()
            wanted = (
                logged.group("level") in ("ERROR", "FATAL")
                if logged
                else bool(_EXCEPTION_LINE.match(said))
            )
            if wanted and said not in found:
                found.append(said)
    return "\n".join(found[:lines]) if found else _tail(paths[0])


def _cluster_id() -> str:
    """A Kafka-style cluster id: a random UUID in URL-safe base64 without padding.

    Never one starting with "-" (1 in 64 would): `kafka-storage format --cluster-id -x…`
    reads it as an option and fails, which is why Kafka's own ``Uuid.randomUuid`` redraws
    those too (seen here: one `kafka start` in a full suite run failed that way).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _stop_with_parent(parent: int) -> None:
    """In the broker's process, before the JVM runs: SIGTERM it when its parent dies.

    Linux's ``PR_SET_PDEATHSIG``: the kernel signals the child when the thread that forked
    it exits, so a SIGKILLed ``streamlearn up`` no longer leaves its broker running (every
    other part watches its supervisor itself; a JVM cannot). Elsewhere nothing happens.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers signal 0; /proc tells it apart where there is one.
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            return stat.read_text().split(") ", 1)[1][0] != "Z"
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Guard against a recycled pid: the process must be kafka.Kafka on our config."""
    cmdline = Path(f"/proc/{pid}/cmdline")
    if not cmdline.exists():  # no procfs (macOS): trust the pid file
        return _pid_alive(pid)
    with contextlib.suppress(OSError):
        args = cmdline.read_bytes().split(b"\0")
        return b"kafka.Kafka" in args and str(data_dir).encode() in b" ".join(args)
    return False


def answers_metadata(
    bootstrap: str, timeout_s: float = 2.0, client_config: dict[str, str] | None = None
) -> bool:
    """True once a broker at ``bootstrap`` returns cluster metadata listing a broker
    (``client_config``: the security settings to ask with)."""
    host, _, port = bootstrap.rpartition(":")
    if not _port_in_use(host, int(port)):
        return False
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, **(client_config or {})})
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except Exception:
        return False
    return bool(metadata.brokers)


class EmbeddedKafka:
    """The embedded broker of one data directory.

    ``start()`` formats storage on first use, launches ``kafka.Kafka`` and waits until it
    answers metadata requests; ``stop()`` sends SIGTERM (Kafka's clean shutdown) and waits.
    The pid file in the data directory lets another process (``streamlearn kafka stop``)
    find and stop a broker started earlier.
    """

    def __init__(self, config: BrokerConfig, classpath: list[Path], heap: str = "512m") -> None:
        self.config = config
        self.classpath = classpath
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        self.stopped_cleanly: bool | None = None
        """After :meth:`stop`: whether the broker shut down by itself after SIGTERM (a JVM
        exits 143 then, having run Kafka's shutdown hook) rather than being killed."""

    @property
    def bootstrap(self) -> str:
        return self.config.bootstrap

    def _java_command(self, java: JavaRuntime, main_class: str, *args: str) -> list[str]:
        return [
            str(java.executable),
            f"-Xmx{self.heap}",
            "-Xms128m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config.log4j_path}",
            f"-Dkafka.logs.dir={self.config.server_log_dir}",
            "-cp",
            os.pathsep.join(str(p) for p in self.classpath),
            main_class,
            *args,
        ]

    def _read_pid_file(self) -> tuple[int, str] | None:
        try:
            data = json.loads(self.config.pid_path.read_text())
            return int(data["pid"]), str(data["bootstrap"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def status(self) -> BrokerStatus:
        recorded = self._read_pid_file()
        if recorded is None or not _is_our_broker(recorded[0], self.config.data_dir):
            return BrokerStatus(running=False, pid=None, bootstrap=None, answering=False)
        pid, bootstrap = recorded
        return BrokerStatus(True, pid, bootstrap, answers_metadata(bootstrap, 2.0, self._client))

    @property
    def _client(self) -> dict[str, str] | None:
        """Security settings of our own metadata requests."""
        return None if self.config.secure is None else self.config.secure.client_config()

    def _write_config(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        # Owner only: kraft-logs holds the topics, telemetry.events with end users' raw IPs
        # and user agents (made with the umask's 0755, every local user could read them).
        self.config.data_dir.chmod(0o700)
        self.config.server_log_dir.mkdir(parents=True, exist_ok=True)
        # The secure broker's properties hold its SCRAM password: owner only.
        path = self.config.properties_path
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(server_properties(self.config))
        path.chmod(0o600)
        self.config.log4j_path.write_text(log4j_properties(self.config))

    def _format_storage(self, java: JavaRuntime) -> None:
        secure = self.config.secure
        formatted_secure = None if secure is None else secure.directory / "formatted"
        if (self.config.log_dir / "meta.properties").exists():
            if formatted_secure is not None and not formatted_secure.exists():
                raise BrokerStartError(
                    f"{self.config.log_dir} was formatted without SCRAM users; start the "
                    "secure broker with another --data-dir"
                )
            return
        arguments = [
            "format",
            "--cluster-id",
            _cluster_id(),
            "--config",
            str(self.config.properties_path),
            "--ignore-formatted",
            # The SCRAM users' passwords: in a private argument file, not on the command line.
            *([] if secure is None else secure.scram_arguments()),
        ]
        directory = self.config.data_dir if secure is None else secure.directory
        with argument_file(directory, "kafka.tools.StorageTool", arguments) as arguments_path:
            result = subprocess.run(
                self._java_command(java, arguments_path),
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env=java_environment(),
            )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()[-2000:]
            if secure is not None:  # the arguments held passwords; the tool may echo them
                for password in secure.passwords.values():
                    detail = detail.replace(password, "***")
            raise BrokerStartError(f"formatting {self.config.log_dir} failed: {detail}")
        if formatted_secure is not None:
            formatted_secure.touch()

    def start(self, timeout_s: float = 60.0, *, stop_with_parent: bool = False) -> BrokerStatus:
        """Start the broker (if not already running) and wait until it is ready.

        ``stop_with_parent``: the broker gets SIGTERM (Kafka's clean shutdown) when the
        thread that starts it dies, however it dies (Linux; see :func:`_stop_with_parent`).
        Call it on a thread that lives as long as the process, e.g. the main thread.
        """
        current = self.status()
        if current.running:
            log.info("embedded Kafka already running: %s", current.describe())
            self.config = replace(self.config, port=int(current.bootstrap.rpartition(":")[2]))  # type: ignore[union-attr]
            self.wait_ready(timeout_s)
            return self.status()
        self.prepare()
        self.launch(stop_with_parent=stop_with_parent)
        try:
            self.wait_ready(timeout_s)
        except BrokerStartError:
            self.stop()
            raise
        return self.status()

    def prepare(self) -> None:
        """Everything before the broker's launch: port checks, config, storage format."""
        if _port_taken(self.config.host, self.config.port):
            raise BrokerStartError(_port_taken_reason(self.config.host, self.config.port))
        if self.config.controller_port == 0:
            controller = free_port(self.config.host, within=self.config.port_range)
            self.config = replace(self.config, controller_port=controller)
        self._write_config()
        self._format_storage(find_java())

    def launch(self, *, stop_with_parent: bool = False) -> int:
        """Launch the prepared broker (without waiting for it); returns its pid."""
        command = self._java_command(find_java(), "kafka.Kafka", str(self.config.properties_path))
        parent = os.getpid()
        with self.config.console_path.open("ab") as console:
            # A new session: Ctrl-C in the terminal that ran `kafka start` must not kill
            # a broker meant to outlive it; stop() sends the signal explicitly.
            self._process = subprocess.Popen(
                command,
                stdout=console,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=java_environment(),
                preexec_fn=(lambda: _stop_with_parent(parent)) if stop_with_parent else None,
            )
        self.config.pid_path.write_text(
            json.dumps({"pid": self._process.pid, "bootstrap": self.bootstrap})
        )
        return self._process.pid

    def wait_ready(self, timeout_s: float) -> float:
        """Block until the broker answers metadata requests; returns the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout_s
        # The process launched, kept here: stop() (Ctrl-C while starting) forgets it, and
        # the wait would poll a port nothing answers until its timeout.
        process = self._process
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                server_log = self.config.server_log_dir / "server.log"
                raise BrokerStartError(
                    f"Kafka exited with code {process.returncode} while starting "
                    f"(logs: {self.config.console_path}, {server_log}):\n"
                    f"{_cause(self.config.console_path, server_log)}"
                )
            if answers_metadata(self.bootstrap, 2.0, self._client):
                return time.monotonic() - started
            time.sleep(0.1)
        raise BrokerStartError(
            f"Kafka did not answer metadata requests at {self.bootstrap} within {timeout_s:.0f}s; "
            f"see {self.config.server_log_dir / 'server.log'}"
        )

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after the timeout).

        Returns False when no broker of this data directory was running.
        """
        recorded = self._read_pid_file()
        pid = (
            self._process.pid if self._process is not None else (recorded[0] if recorded else None)
        )
        if pid is None or not _is_our_broker(pid, self.config.data_dir):
            self.config.pid_path.unlink(missing_ok=True)
            self._process = None
            return False
        os.kill(pid, signal.SIGTERM)
        clean = self._wait_exit(pid, timeout_s)
        if not clean:
            log.warning("Kafka (pid %d) did not stop within %.0fs; killing it", pid, timeout_s)
            os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        exit_code = None if self._process is None else self._process.returncode
        self.stopped_cleanly = clean and exit_code in (None, 0, JVM_SIGTERM_EXIT)
        self.config.pid_path.unlink(missing_ok=True)
        self._process = None
        return True

    def _wait_exit(self, pid: int, timeout_s: float) -> bool:
        if self._process is not None:
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.1)
        return False

    def wait(self) -> int:
        """Wait for a broker started by this object to exit; returns its exit code."""
        if self._process is None:
            raise EmbeddedKafkaError("this broker was not started by this process")
        return self._process.wait()
