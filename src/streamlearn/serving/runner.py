"""Running prediction worker processes: the event loop and the process settings they need.

``streamlearn serve`` calls :func:`run_worker`; :func:`run_workers` runs several worker
processes on one port. It runs the app on uvloop when uvloop is
installed (about 20 µs less CPU per request than asyncio's default loop for a handler answering
a constant on the benchmark machine, a third of aiohttp's own cost for a small request) and on
asyncio's loop otherwise, with the same behaviour: handlers, signals and shutdown are aiohttp's
(``web.run_app``'s, with :class:`~streamlearn.serving.shortcut.ServingRunner` as the runner:
its server answers predictions before the Application's router).
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import importlib.util
import logging
import multiprocessing
import os
import signal
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import wait
from types import FrameType

from aiohttp import web

from streamlearn.garbage_collection import settle_long_lived_heap
from streamlearn.listen_errors import bind_error
from streamlearn.orphan_watch import stop_when_parent_gone
from streamlearn.serving.shortcut import ServingRunner
from streamlearn.stacks_on_signal import STACKS_SIGNAL, write_stacks_on_signal

log = logging.getLogger(__name__)


def new_event_loop(prefer_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """uvloop's event loop if it is installed (and wanted), else asyncio's."""
    if prefer_uvloop and importlib.util.find_spec("uvloop") is not None:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run_worker(
    app: web.Application,
    *,
    host: str,
    port: int,
    print: Callable[..., None] | None = None,
    access_log: logging.Logger | None = None,
    prefer_uvloop: bool = True,
    reuse_port: bool = False,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (then the app's cleanup runs: the follower
    stops, telemetry is flushed). ``reuse_port``: bind with ``SO_REUSEPORT`` (the kernel
    spreads connections between the processes listening on the port). ``ssl_context``:
    HTTPS only (:func:`streamlearn.http_tls.server_ssl_context`)."""
    loop = new_event_loop(prefer_uvloop)
    log.debug("prediction worker event loop: %s", type(loop).__module__)
    # Everything created so far lives as long as the process: kept out of the cyclic
    # garbage collector's scans (~8% less CPU per request, measured with bench/predict.py).
    # The young threshold is raised too: a batch request's containers stay alive until the
    # telemetry drain has encoded them, and with Python's threshold (700) the collector
    # scanned them over and over (batches of 32: 16.5 -> 15.9 us of CPU per prediction).
    settle_long_lived_heap()
    listener = Listener(host, port, print, access_log, reuse_port or None, ssl_context)
    serve_until_stopped(app, loop=loop, listener=listener)


@dataclass(frozen=True)
class Listener:
    """Where and how a worker listens, and what it says once it does."""

    host: str
    port: int
    print: Callable[..., None] | None
    access_log: logging.Logger | None
    reuse_port: bool | None
    ssl_context: ssl.SSLContext | None


def serve_until_stopped(
    app: web.Application, *, loop: asyncio.AbstractEventLoop, listener: Listener
) -> None:
    """What ``web.run_app`` does (SIGINT and SIGTERM end it gracefully: the app's cleanup
    runs; then the loop's other tasks are cancelled and the loop closed), run by a
    :class:`~streamlearn.serving.shortcut.ServingRunner`, whose server answers predictions
    before the router (``run_app`` takes no runner of another class)."""
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, listener))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()  # its cleanup (the app's shutdown) runs to the end
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            _cancel_left_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


async def _serve(app: web.Application, listener: Listener) -> None:
    # run_app's defaults: signals handled, idle connections closed after 75 s.
    runner = ServingRunner(
        app, handle_signals=True, access_log=listener.access_log, keepalive_timeout=75.0
    )
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, listener.host, listener.port, ssl_context=listener.ssl_context,
            reuse_port=listener.reuse_port,
        )  # fmt: skip
        await site.start()
        if listener.print:  # aiohttp's message: `serve`'s caller reads the port in it
            names = ", ".join(sorted(str(s.name) for s in runner.sites))
            listener.print(f"======== Running on {names} ========\n(Press CTRL+C to quit)")
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()


def _cancel_left_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still on ``loop`` and let them finish; report any that failed."""
    left = asyncio.all_tasks(loop)
    for task in left:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    for task in left:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {"message": "unhandled exception while stopping", "exception": task.exception(),
                 "task": task}
            )  # fmt: skip


def check_bindable(host: str, port: int) -> None:
    """Raise an OSError (address in use) when any process listens on ``host:port``, here,
    once, before any worker is forked. The probe binds without ``SO_REUSEPORT``: with it,
    as the workers bind, it was let in beside another ``serve --workers`` fleet, and the
    kernel split the connections between the two. ``SO_REUSEADDR``, as aiohttp binds: a
    port whose last server just stopped (connections in TIME_WAIT) is free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise bind_error(exc, host, port) from None


def run_workers(
    make_app: Callable[[int], web.Application],
    workers: int,
    *,
    host: str,
    port: int,
    print: Callable[..., None] | None = None,
    access_log: logging.Logger | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Run ``workers`` worker processes on one port (``SO_REUSEPORT``), each with its own
    app from ``make_app(index)``, ``index`` 0 to ``workers - 1`` (so its own follower of
    ``model.state`` and telemetry producer, and its own metrics port if it has one),
    until SIGINT or SIGTERM, which are passed on to every worker (each stops gracefully);
    SIGQUIT writes this process's stacks and is passed on too (each worker writes its own).
    One worker is :func:`run_worker` in this process. Returns the exit code: 0, or the
    first non-zero code of a worker (a worker that dies stops the others: restarting is the
    supervisor's job, as for one worker), or 1 when a worker stopped cleanly without this
    process asking it to.

    The apps are built here first (a configuration mistake is raised here, once); the
    workers are forked before any event loop, thread or Kafka client exists in this
    process (so nothing is inherited half-initialised); ``print`` is passed to the first,
    ``ssl_context`` (TLS, loaded once here) to each. A worker whose parent is gone (killed
    outright) stops itself.
    """
    if workers <= 1:
        app = make_app(0)
        # Here, as for a fleet: the worker binds only after its startup (model.state read,
        # up to STREAMLEARN_SERVE_STARTUP_WAIT_S with the broker away), and a taken port was
        # said after all that, its snapshots' alerts raised on the way.
        check_bindable(host, port)
        run_worker(
            app, host=host, port=port, print=print, access_log=access_log,
            ssl_context=ssl_context,
        )  # fmt: skip
        return 0
    # Built here, before any worker is forked: a configuration mistake (no signing key, an
    # unknown model) is raised to the command once, as with one worker, not as a traceback
    # per worker. Building an app starts no thread, loop or Kafka client (its lifecycle
    # does, in the worker).
    apps = [make_app(index) for index in range(workers)]
    check_bindable(host, port)
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    children = [
        context.Process(
            target=_worker_process,
            args=(
                WorkerStart(apps[index], parent, print if index == 0 else None),
                host,
                port,
                access_log,
                ssl_context,
            ),
            name=f"serve-worker-{index}",
        )
        for index in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    def stacks(signum: int, frame: FrameType | None) -> None:
        # Its own stacks, and each worker's: `up` (or an operator) signals this process.
        # A stderr that is not a file (captured in-process) or a worker that just ended
        # must not make a signal handler raise.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            faulthandler.dump_traceback(all_threads=True)
        for child in children:
            if child.pid is not None and child.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, STACKS_SIGNAL)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous[STACKS_SIGNAL] = signal.signal(STACKS_SIGNAL, stacks)
    try:
        for child in children:
            child.start()
        running = list(children)
        code = 0
        while running:
            for sentinel in wait([c.sentinel for c in running]):
                child = next(c for c in running if c.sentinel == sentinel)
                child.join()
                running.remove(child)
                # Once stopping, a worker's clean exit is what was asked; a failure still counts.
                if not code and (child.exitcode or not stopping):
                    code = _fleet_exit_code(child.exitcode)
                    log.error(
                        "%s exited with %s: stopping the others", child.name,
                        _shell_exit_code(child.exitcode),
                    )  # fmt: skip
                if not stopping:
                    stop(signal.SIGTERM, None)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _shell_exit_code(exit_code: int | None) -> int:
    """A process's exit code as a shell says it: a signal's is 128 + its number."""
    if exit_code is None:
        return 0
    return exit_code if exit_code >= 0 else 128 - exit_code


def _fleet_exit_code(worker_exit_code: int | None) -> int:
    """The exit code of a fleet stopped because one worker ended: the worker's, and 1 for a
    worker that stopped cleanly unasked (someone sent it SIGTERM): the fleet no longer
    serves, and its 0 read as a clean stop to a supervisor restarting on failure."""
    return _shell_exit_code(worker_exit_code) or 1


@dataclass(frozen=True)
class WorkerStart:
    """What one forked worker starts from: its app, built by the parent, the parent's pid,
    and what it says once it listens (the first worker only)."""

    app: web.Application
    parent_pid: int
    print: Callable[..., None] | None


def _worker_process(
    start: WorkerStart,
    host: str,
    port: int,
    access_log: logging.Logger | None,
    ssl_context: ssl.SSLContext | None,
) -> None:
    # A process group of its own: a terminal's Ctrl-C reaches the parent only, which passes
    # one SIGTERM on (two signals could cut a worker's telemetry flush short). The parent's
    # handlers are not this process's: aiohttp installs its own in run_app.
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(STACKS_SIGNAL, signal.SIG_DFL)
    write_stacks_on_signal()
    # Its own process group keeps it out of a kill of the parent's group, so a parent
    # killed outright (SIGKILL, the OOM killer) left it serving on the port for good: it
    # stops itself (SIGTERM, a clean stop) once the parent is gone.
    stop_when_parent_gone(start.parent_pid)
    run_worker(
        start.app, host=host, port=port, print=start.print, access_log=access_log,
        reuse_port=True, ssl_context=ssl_context,
    )  # fmt: skip
