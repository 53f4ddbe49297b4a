"""Supervised child processes: started, watched, restarted after a crash, stopped in order.

Each part of the system runs as ``python -m streamlearn ...`` in its own process group, so
a Ctrl-C in the terminal reaches only the supervisor, which then stops the parts in the
order that loses nothing (front doors first, Kafka last) instead of all at once. A child's
output goes to ``<data dir>/logs/<name>.log``; when one exits without being asked to, the
crash (exit code and the last lines of its log) is reported and it is started again after
a back-off that doubles up to 30 s and resets once a run lasted a minute. A child that was
ready and then stops answering its ready URL for ``stuck_after_s`` is stuck (measured: an
agent worker SIGSTOPped beyond its consumer session timeout, then let go, waited in its
stores' recovery for good): it is SIGKILLed, reported, and restarted like a crash. Not
ready because Kafka does not answer is not stuck: a restart would not bring it back.
Before any SIGKILL (stuck, or not stopped within its grace after SIGTERM) it gets SIGQUIT,
on which every streamlearn command writes its threads' stacks to its log
(:mod:`streamlearn.stacks_on_signal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from streamlearn.exceptions import StreamlearnError
from streamlearn.orphan_watch import SUPERVISOR_PID_ENV
from streamlearn.runtime.broker_probe import KAFKA_UNREACHABLE
from streamlearn.runtime.partition_growth import PARTITIONS_GREW_EXIT
from streamlearn.stacks_on_signal import STACKS_SIGNAL
from streamlearn.up.doors import client_session

RESTART_DELAY_MIN_S = 1.0
RESTART_DELAY_MAX_S = 30.0
STABLE_AFTER_S = 60.0
LOG_TAIL_LINES = 12
READY_POLL_S = 5.0
STACKS_WRITTEN_S = 0.5
"""How long a part that did not stop in time has to write its stacks before SIGKILL
(faulthandler writes from the signal handler: milliseconds)."""


@dataclass(frozen=True)
class ChildSpec:
    """How to run one part: ``streamlearn`` arguments, extra environment, and the URL that
    answers 200 once it is up (None: up as soon as it runs)."""

    name: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Set over `up`'s environment; may hold the part's secrets, so never in a repr."""
    unset: frozenset[str] = frozenset()
    """Variables of `up`'s environment the part does not get (secrets it does not use)."""
    program: tuple[str, ...] = (sys.executable, "-m", "streamlearn")
    ready_url: str | None = None
    metrics_url: str | None = None
    ready_timeout_s: float = 120.0
    stop_timeout_s: float = 20.0
    stuck_after_s: float | None = 120.0
    """Not ready for this long after being ready: killed and restarted (None: never)."""
    stacks_signal: int | None = STACKS_SIGNAL
    """On which it writes its threads' stacks to its log and goes on
    (:mod:`streamlearn.stacks_on_signal`; None: a program that does not)."""


def child_environment(spec: ChildSpec) -> dict[str, str]:
    """What a part runs with: `up`'s environment without ``spec.unset``, and its own."""
    inherited = {k: v for k, v in os.environ.items() if k not in spec.unset}
    return {
        **inherited,
        "PYTHONUNBUFFERED": "1",
        SUPERVISOR_PID_ENV: str(os.getpid()),
        **spec.env,
    }


@dataclass(frozen=True)
class Crash:
    name: str
    exit_code: int
    at: float
    log_tail: tuple[str, ...]
    stuck_s: float | None = None
    """Set when the supervisor killed it for not being ready this long."""

    @property
    def planned(self) -> bool:
        """Whether the process asked to be restarted (an agent worker whose topics grew
        partitions): a restart by design, which `up` counts apart from crashes."""
        return self.exit_code == PARTITIONS_GREW_EXIT and self.stuck_s is None

    @property
    def ended(self) -> str:
        """How the process ended: ``exit code 1``, ``ended by SIGKILL``; with the
        supervisor's reason when it killed the process for not being ready."""
        stuck = "" if self.stuck_s is None else f", not ready for {self.stuck_s:.0f}s"
        return how_it_ended(self.exit_code) + stuck

    def describe(self) -> str:
        lines = "\n".join(f"    {line}" for line in self.log_tail)
        if self.planned:
            return (
                f"{self.name} stopped to be restarted (planned): {how_it_ended(self.exit_code)}"
                f"; its last lines:\n{lines}"
            )
        why = "" if self.stuck_s is None else f" (killed: not ready for {self.stuck_s:.0f}s)"
        # In the summary's words (`ended by SIGKILL`, not `exited with code -9`).
        return f"{self.name} stopped: {how_it_ended(self.exit_code)}{why}; its last lines:\n{lines}"


def how_it_ended(code: int) -> str:
    """``exit code N``, or ``ended by SIGNAME`` for a process a signal ended; with the
    reason of an agent worker that stopped because a topic of its grew."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"ended by {signal.Signals(-code).name}"
    if code == PARTITIONS_GREW_EXIT:
        return f"exit code {code} (a topic of its grew partitions: restarted on the new count)"
    return f"exit code {code}"


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> tuple[str, ...]:
    try:
        with path.open(errors="replace") as log:
            return tuple(line.rstrip("\n") for line in deque(log, maxlen=lines))
    except OSError:
        return ()


def _answer(body: bytes) -> dict[str, object]:
    """A readiness answer's JSON object (empty when it is not one)."""
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _answering_pid(body: bytes) -> int | None:
    """The pid a readiness answer names (the agents' and the archive's do), else None."""
    pid = _answer(body).get("pid")
    return pid if isinstance(pid, int) else None


def _waits_for_kafka(body: bytes) -> bool:
    """Whether a readiness answer blames Kafka (runtime/broker_probe.py): a restart would
    not bring the brokers back, so it does not make a part stuck."""
    return _answer(body).get("status") == KAFKA_UNREACHABLE


class Child:
    """One supervised process (and the processes that replaced it after crashes)."""

    def __init__(
        self,
        spec: ChildSpec,
        log_dir: Path,
        on_crash: Callable[[Crash], None],
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.spec = spec
        self.client_ssl = client_ssl
        """What an https ready URL is verified with (None: the system's trust store)."""
        self.log_path = log_dir / f"{spec.name}.log"
        self.on_crash = on_crash
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.crashes: list[Crash] = []
        self.planned_restarts: list[Crash] = []
        """Exits the process asked to be restarted with (:attr:`Crash.planned`)."""
        self.exit_code: int | None = None
        self.killed = False
        self._stopping = False
        self._watcher: asyncio.Task[None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._stuck: tuple[int, float] | None = None
        """(pid, seconds not ready) of the process the prober killed."""

    @property
    def state(self) -> str:
        if self.exit_code is not None:
            return "stopped"
        if self.process is None or self.process.returncode is not None:
            return "restarting" if self.starts else "starting"
        return "running"

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = child_environment(self.spec)
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.ctime()}\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                *self.spec.program, *self.spec.args,
                env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                process_group=0,
            )  # fmt: skip
        self.starts += 1

    async def start(self) -> None:
        await self._spawn()
        self._watcher = asyncio.create_task(self._watch(), name=f"watch-{self.spec.name}")
        if self.spec.ready_url is not None and self.spec.stuck_after_s is not None:
            self._prober = asyncio.create_task(self._probe(), name=f"probe-{self.spec.name}")

    async def _watch(self) -> None:
        delay = RESTART_DELAY_MIN_S
        while True:
            assert self.process is not None
            started = time.monotonic()
            code = await self.process.wait()
            if self._stopping:
                return
            stuck = self._stuck
            stuck_s = stuck[1] if stuck is not None and stuck[0] == self.process.pid else None
            crash = Crash(self.spec.name, code, time.time(), _tail(self.log_path), stuck_s)
            (self.planned_restarts if crash.planned else self.crashes).append(crash)
            self.on_crash(crash)
            if time.monotonic() - started >= STABLE_AFTER_S:
                delay = RESTART_DELAY_MIN_S
            await asyncio.sleep(delay)
            delay = min(RESTART_DELAY_MAX_S, delay * 2)
            if self._stopping:
                return
            await self._spawn()

    async def _probe(self) -> None:
        """Kill a process that was ready and has not been for ``stuck_after_s`` (the
        watcher then restarts it); a new process must be ready once before it counts."""
        url, limit = self.spec.ready_url, self.spec.stuck_after_s
        assert url is not None
        assert limit is not None
        process, ready_once, failing_since = None, False, None
        async with client_session(self.client_ssl) as session:
            while not self._stopping:
                await asyncio.sleep(READY_POLL_S)
                if self.process is not process:
                    process, ready_once, failing_since = self.process, False, None
                if process is None or process.returncode is not None:
                    continue
                ready = waiting = False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        ready = response.status == 200
                        waiting = not ready and _waits_for_kafka(await response.read())
                now = time.monotonic()
                if waiting:
                    failing_since = None
                    continue
                if ready or not ready_once:
                    ready_once, failing_since = ready_once or ready, None
                    continue
                failing_since = failing_since or now
                if now - failing_since >= limit and not self._stopping:
                    self._stuck = (process.pid, now - failing_since)
                    await self._kill_writing_stacks(process)
                    ready_once, failing_since = False, None

    async def wait_ready(self, session: aiohttp.ClientSession) -> None:
        """Until the ready URL answers 200 (a crash meanwhile restarts the child and the
        wait goes on); a clear error with the log's last lines after the timeout."""
        deadline = time.monotonic() + self.spec.ready_timeout_s
        impostor: int | None = None
        while time.monotonic() < deadline:
            process = self.process
            running = process is not None and process.returncode is None
            if running and self.spec.ready_url is None:
                return
            if running and process is not None and self.spec.ready_url is not None:
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.spec.ready_url) as response:
                        if response.status == 200:
                            answered_by = _answering_pid(await response.read())
                            if answered_by in (None, process.pid):
                                return
                            impostor = answered_by
            await asyncio.sleep(0.2)
        tail = "\n".join(_tail(self.log_path))
        # A port given twice: another part listens where this one should, and answers.
        shadowed = (
            ""
            if impostor is None
            else f"; its port is answered by another process (pid {impostor})"
        )
        raise StreamlearnError(
            f"{self.spec.name} did not come up within {self.spec.ready_timeout_s:.0f}s"
            f"{shadowed} (log {self.log_path}):\n{tail}"
        )

    async def stop(self) -> None:
        """SIGTERM, then after the stop timeout the stacks signal (what it was waiting for
        goes to its log) and SIGKILL; records the exit code."""
        self._stopping = True
        process = self.process
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.spec.stop_timeout_s)
            except TimeoutError:
                self.killed = True
                await self._kill_writing_stacks(process)
                await process.wait()
        for task in (self._watcher, self._prober):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.exit_code = process.returncode if process is not None else None

    async def _kill_writing_stacks(self, process: asyncio.subprocess.Process) -> None:
        """SIGKILL, after the stacks signal and a moment to write them (a process that
        exits meanwhile is left as it ended)."""
        if self.spec.stacks_signal is not None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self.spec.stacks_signal)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), STACKS_WRITTEN_S)
        with contextlib.suppress(ProcessLookupError):
            process.kill()

    @property
    def exited_cleanly(self) -> bool:
        """Stopped, and with no reason for :attr:`unclean_stop` to give."""
        return self.exit_code is not None and self.unclean_stop is None

    @property
    def unclean_stop(self) -> str | None:
        """Why its stop was not clean, in a few words (None: it was, or it has not
        stopped)."""
        code = self.exit_code
        if self.killed:
            told = f"did not stop within {self.spec.stop_timeout_s:g}s: killed"
            if self.spec.stacks_signal is None:
                return told
            return f"{told}; where it was is in {self.log_path.name}"
        if not code:
            return None
        return how_it_ended(code)


class Supervisor:
    """The children of one ``up``, started in order and stopped in reverse order."""

    def __init__(
        self,
        log_dir: Path,
        on_crash: Callable[[Crash], None],
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self.log_dir = log_dir
        self.on_crash = on_crash
        self.client_ssl = client_ssl
        self.children: list[Child] = []

    async def start(self, specs: Sequence[ChildSpec]) -> list[Child]:
        """Start ``specs`` together and wait until each is up."""
        started = [Child(spec, self.log_dir, self.on_crash, self.client_ssl) for spec in specs]
        self.children.extend(started)
        for child in started:
            await child.start()
        async with client_session(self.client_ssl) as session:
            await asyncio.gather(*(child.wait_ready(session) for child in started))
        return started

    async def stop(self, groups: Sequence[Sequence[str]]) -> None:
        """Stop the named children group by group (each group at once), then the rest."""
        named = {child.spec.name: child for child in self.children}
        done: set[str] = set()
        for group in groups:
            batch = [named[name] for name in group if name in named and name not in done]
            done.update(child.spec.name for child in batch)
            await asyncio.gather(*(child.stop() for child in batch))
        rest = [child for child in reversed(self.children) if child.spec.name not in done]
        for child in rest:
            await child.stop()
