"""Several worker processes on one port (SO_REUSEPORT), stopped together by one signal."""

from __future__ import annotations

import http.client
import multiprocessing
import os
import signal
import time

from aiohttp import web

from streamlearn.kafka_local import free_port
from streamlearn.serving import create_serving_app
from streamlearn.serving.runner import run_workers
from streamlearn.settings import Settings


def _app() -> web.Application:
    app = create_serving_app(Settings(models=["ctr"]), kafka=False)

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


def test_two_workers_share_the_port_and_stop_on_one_sigterm() -> None:
    port = free_port()
    runner = multiprocessing.get_context("fork").Process(target=_run, args=(port,))
    runner.start()
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            pid = _pid(port)
            if pid is not None:
                pids.add(pid)
            else:
                time.sleep(0.05)
        assert len(pids) == 2, pids  # connections spread over both processes
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


def _broken() -> web.Application:
    raise RuntimeError("no app")


def _run_broken(port: int) -> None:
    raise SystemExit(run_workers(_broken, 2, host="127.0.0.1", port=port))


def test_a_worker_that_dies_stops_the_rest_with_its_code() -> None:
    runner = multiprocessing.get_context("fork").Process(target=_run_broken, args=(free_port(),))
    runner.start()
    runner.join(30)
    assert runner.exitcode == 1
