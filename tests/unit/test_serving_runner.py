"""Several worker processes on one port (SO_REUSEPORT), stopped together by one signal."""

from __future__ import annotations

import contextlib
import functools
import http.client
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from multiprocessing.process import BaseProcess
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from streamlearn.exceptions import ConfigurationError
from streamlearn.kafka_local import free_port
from streamlearn.serving import create_serving_app
from streamlearn.serving.runner import check_bindable, run_worker, run_workers
from streamlearn.settings import Settings


def _app(index: int = 0, metrics_port: int | None = None) -> web.Application:
    own = None if metrics_port is None else metrics_port + index
    app = create_serving_app(Settings(models=["ctr"]), kafka=False, metrics_port=own)

    async def pid(request: web.Request) -> web.Response:
        return web.Response(text=str(os.getpid()))

    app.router.add_get("/pid", pid)
    return app


def _run(port: int) -> None:
    raise SystemExit(run_workers(_app, 2, host="127.0.0.1", port=port))


def _pid(port: int) -> int | None:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/pid")  # a new connection each time
        return int(connection.getresponse().read())
    except OSError:
        return None
    finally:
        connection.close()


def _both_workers(port: int) -> set[int]:
    """The pids of the two workers on ``port``, each met by a new connection."""
    pids: set[int] = set()
    deadline = time.monotonic() + 30
    while len(pids) < 2 and time.monotonic() < deadline:
        pid = _pid(port)
        if pid is not None:
            pids.add(pid)
        else:
            time.sleep(0.05)
    assert len(pids) == 2, pids
    return pids


def test_two_workers_share_the_port_and_stop_on_one_sigterm() -> None:
    port = free_port()
    runner = multiprocessing.get_context("fork").Process(target=_run, args=(port,))
    runner.start()
    try:
        pids = _both_workers(port)  # connections spread over both processes
        assert runner.pid not in pids
        assert runner.pid is not None
        os.kill(runner.pid, signal.SIGTERM)
        runner.join(20)
        assert runner.exitcode == 0
        for pid in pids:  # both workers are gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"worker {pid} still running")
    finally:
        if runner.is_alive():
            runner.kill()


def _run_logged(port: int, log: str) -> None:
    # Its stderr (and its workers') to a file, as a part's log under `up`; open for the
    # process's lifetime.
    os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND), 2)
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    raise SystemExit(run_workers(_app, 2, host="127.0.0.1", port=port))


def test_sigquit_writes_the_stacks_of_every_worker_and_stops_none(tmp_path: Path) -> None:
    """`up` sends SIGQUIT to the process it started, the parent of the workers: each
    worker writes its threads' stacks too (streamlearn/stacks_on_signal.py), and all go on."""
    port = free_port()
    log = tmp_path / "serve.log"
    runner = multiprocessing.get_context("fork").Process(target=_run_logged, args=(port, str(log)))
    runner.start()
    pids: set[int] = set()
    try:
        pids = _both_workers(port)
        assert runner.pid is not None
        os.kill(runner.pid, signal.SIGQUIT)
        deadline = time.monotonic() + 10
        while log.read_text().count("Current thread 0x") < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert runner.is_alive()
        assert {_pid(port) for _ in range(20)} <= pids  # both still answer
        os.kill(runner.pid, signal.SIGTERM)
        runner.join(20)
        assert runner.exitcode == 0
    finally:
        if runner.is_alive():
            runner.kill()
        for pid in pids:  # workers a failed test left behind
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _broken(index: int) -> web.Application:
    raise RuntimeError("no app")


def _run_broken(port: int) -> None:
    raise SystemExit(run_workers(_broken, 2, host="127.0.0.1", port=port))


def test_a_worker_that_dies_stops_the_rest_with_its_code() -> None:
    runner = multiprocessing.get_context("fork").Process(target=_run_broken, args=(free_port(),))
    runner.start()
    runner.join(30)
    assert runner.exitcode == 1


def _run_with_metrics_ports(port: int, metrics_port: int) -> None:
    make_app = functools.partial(_app, metrics_port=metrics_port)
    raise SystemExit(run_workers(make_app, 2, host="127.0.0.1", port=port))


def _get(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        if body is None:
            connection.request("GET", path)
        else:
            connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _served(metrics: bytes) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.decode().splitlines()
        if line.startswith("streamlearn_serve_predictions_total{")
    )


def test_each_worker_process_has_its_own_metrics_port() -> None:
    """On the shared port, /metrics comes from whichever process takes the connection:
    Prometheus saw counts jump between the two. Each process's own port (--metrics-port,
    + its index) answers for that process alone, and the two add up to what was served."""
    port, metrics_port = free_port(), free_port()
    while True:  # two free ports in a row
        try:
            check_bindable("127.0.0.1", metrics_port + 1)
            break
        except OSError:
            metrics_port = free_port()
    runner = multiprocessing.get_context("fork").Process(
        target=_run_with_metrics_ports, args=(port, metrics_port)
    )
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while not all(_ready(metrics_port + i) for i in range(2)):
            assert time.monotonic() < deadline, "a process's own port never answered"
            time.sleep(0.05)
        body = orjson.dumps({"user_id": "u-1", "features": {"price": 1.0}})
        pids = set()
        for _ in range(40):  # a connection each: the kernel spreads them over both
            status, _ = _get(port, "/v1/models/ctr:predict", body)
            assert status == 200
            pids.add(_pid(port))
        assert len(pids) == 2
        counts = []
        for own in (metrics_port, metrics_port + 1):
            first, again = _get(own, "/metrics")[1], _get(own, "/metrics")[1]
            assert _served(first) == _served(again)  # one process, every scrape
            counts.append(_served(first))
        assert sum(counts) == 40, counts
        assert all(count > 0 for count in counts), counts
        assert _get(metrics_port, "/v1/models/ctr:predict", body)[0] == 404  # probes only
    finally:
        if runner.pid is not None and runner.is_alive():
            os.kill(runner.pid, signal.SIGTERM)
        runner.join(20)
        if runner.is_alive():
            runner.kill()


def _ready(port: int) -> bool:
    try:
        return _get(port, "/readyz")[0] == 200
    except OSError:
        return False


def _run_one(port: int, stopped: str) -> None:
    app = _app()

    async def mark_stopped(app: web.Application) -> AsyncIterator[None]:
        yield
        Path(stopped).write_text("cleaned up")  # what a worker's telemetry flush is

    app.cleanup_ctx.append(mark_stopped)
    run_worker(app, host="127.0.0.1", port=port, print=Path(f"{stopped}.said").write_text)


def test_one_worker_answers_a_prediction_and_stops_gracefully_on_sigterm(
    tmp_path: Path,
) -> None:
    port, stopped = free_port(), tmp_path / "stopped"
    worker = multiprocessing.get_context("fork").Process(target=_run_one, args=(port, stopped))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while _pid(port) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        body = orjson.dumps({"instances": [{"user_id": "u", "features": {}}]})
        connection.request(
            "POST",
            "/v1/models/ctr:predict",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        answer = connection.getresponse()
        assert answer.status == 200
        assert orjson.loads(answer.read())["predictions"][0]["degraded_reason"] == "no_model"
        connection.close()
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(20)
        assert worker.exitcode == 0
        assert stopped.read_text() == "cleaned up"
        # aiohttp's start message, which `serve`'s caller reads the port from.
        said = Path(f"{stopped}.said").read_text()
        url = f"http://127.0.0.1:{port}"
        assert said == f"======== Running on {url} ========\n(Press CTRL+C to quit)"
    finally:
        if worker.is_alive():
            worker.kill()


def test_workers_do_not_join_a_port_another_fleet_listens_on() -> None:
    """Found by a new user: a second `serve --workers 2` on the port of a first one
    started, and the kernel split the connections between the two fleets (one of them
    configured otherwise: half the answers were stale). The check bound with SO_REUSEPORT,
    as the workers do, which any other SO_REUSEPORT listener lets in."""
    import socket

    import pytest

    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as fleet:
        fleet.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        fleet.bind(("127.0.0.1", port))
        fleet.listen()
        with pytest.raises(OSError, match="address already in use"):
            run_workers(lambda index: web.Application(), 2, host="127.0.0.1", port=port)


def _alive(pid: int) -> bool:
    """Running: not gone, and not a zombie an init that does not reap keeps listed."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@contextlib.contextmanager
def _fleet(port: int) -> Iterator[tuple[BaseProcess, set[int]]]:
    """A `serve --workers 2` on ``port`` in a forked process, and its two workers' pids;
    whatever a failed test left running is killed after."""
    runner = multiprocessing.get_context("fork").Process(target=_run, args=(port,))
    runner.start()
    pids: set[int] = set()
    try:
        pids = _both_workers(port)
        yield runner, pids
    finally:
        if runner.is_alive():
            runner.kill()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_workers_stop_when_their_parent_is_killed() -> None:
    """Found by a new user: `kill -KILL` of a `serve --workers 2` parent (what the OOM
    killer or a supervisor's stop timeout does) left both workers running, re-parented,
    each in a process group of its own, answering on the port: the next `serve` on it was
    refused (address in use) and nothing would ever stop them. They now notice within a
    second that their parent is gone and stop as on SIGTERM."""
    port = free_port()
    with _fleet(port) as (runner, pids):
        runner.kill()
        runner.join(10)
        deadline = time.monotonic() + 15
        while any(_alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "a worker outlived its killed parent"
            time.sleep(0.1)
        assert _pid(port) is None  # nothing answers on the port any more


def _misconfigured(index: int) -> web.Application:
    raise ConfigurationError("a prediction worker needs STREAMLEARN_MODEL_SIGNING_KEY")


def test_a_configuration_mistake_is_raised_once_before_any_worker_starts() -> None:
    """Found by a new user: `serve --workers 2` without STREAMLEARN_MODEL_SIGNING_KEY
    printed a traceback per worker process and "serve-worker-0 exited with 1: stopping the
    others", where `serve` alone says `streamlearn: error: <why>` on one line. The apps
    are built here, before the workers are forked, so the mistake reaches the command as
    with one worker."""
    with pytest.raises(ConfigurationError, match="STREAMLEARN_MODEL_SIGNING_KEY"):
        run_workers(_misconfigured, 2, host="127.0.0.1", port=free_port())


def test_a_worker_stopped_on_its_own_stops_the_fleet_as_a_failure() -> None:
    """Found by a new user: SIGTERM to one worker (an operator stopping a stuck one found on
    its own port) stopped the whole fleet without a word and `serve` exited 0, a clean stop
    to a supervisor that restarts on failure: the service stayed down. A worker that ends
    when `serve` did not ask it to is now said, and `serve` exits 1."""
    with _fleet(free_port()) as (runner, pids):
        os.kill(min(pids), signal.SIGTERM)  # stops cleanly: exit 0
        runner.join(30)
        assert runner.exitcode == 1
        assert not any(_alive(pid) for pid in pids)


def _one_worker_on(port: int, started: str) -> None:
    """`serve` with one worker on ``port``; its app's startup (where a worker reads
    model.state, up to STREAMLEARN_SERVE_STARTUP_WAIT_S) writes ``started``."""

    async def startup(app: web.Application) -> AsyncIterator[None]:
        Path(started).write_text("started")
        yield

    def make_app(index: int) -> web.Application:
        app = web.Application()
        app.cleanup_ctx.append(startup)
        return app

    try:
        run_workers(make_app, 1, host="127.0.0.1", port=port)
    except OSError:
        raise SystemExit(3) from None
    raise SystemExit(0)


def test_one_worker_is_refused_a_taken_port_before_it_starts(tmp_path: Path) -> None:
    """Found by a new user: `serve --port 8000` with 8000 taken read model.state, raised
    its snapshots' alerts and, with the broker away, waited the whole startup wait (30 s)
    before it said the address was in use; `serve --workers 2` said it at once. One
    worker's port is now checked as a fleet's is, before the app starts."""
    import socket

    port = free_port()
    started = tmp_path / "started"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        worker = multiprocessing.get_context("fork").Process(
            target=_one_worker_on, args=(port, str(started))
        )
        worker.start()
        worker.join(30)
    assert worker.exitcode == 3, "address in use, said as an OSError"
    assert not started.exists(), "the worker started before it found its port taken"
