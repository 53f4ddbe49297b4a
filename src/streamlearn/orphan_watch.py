"""A supervised part stops itself when its supervisor is gone.

`up` starts each part in its own process group (so a Ctrl-C reaches `up` alone) and names
itself in ``STREAMLEARN_SUPERVISOR_PID``. If `up` dies without stopping them (SIGKILL, a
crash of the interpreter), the parts are re-parented; each notices within a second and
sends itself SIGTERM, which every long-running command handles as a clean stop (offsets
committed, producers flushed); one still alive ``CLEAN_STOP_S`` later (its broker went
with `up`, and its shutdown waits for it) ends itself with SIGKILL. Without this, a killed
`up` left them running and holding their ports. The workers of `serve --workers N` watch
the `serve` that forked them the same way (:func:`stop_when_parent_gone`).
"""

from __future__ import annotations

import os
import signal
import threading
import time

SUPERVISOR_PID_ENV = "STREAMLEARN_SUPERVISOR_PID"
CHECK_INTERVAL_S = 1.0
CLEAN_STOP_S = 20.0
"""How long an orphan may take to stop cleanly before it ends itself with SIGKILL: a
killed `up` takes its embedded broker with it, and Faust's shutdown then waited for that
broker for good (agents alive minutes later, a second SIGTERM ignored). A clean stop with
a broker there takes a few seconds."""


def _watch(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(CHECK_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGTERM)
    # A daemon thread: a process that stops cleanly takes it along before this wakes.
    time.sleep(CLEAN_STOP_S)
    os.kill(os.getpid(), signal.SIGKILL)


def stop_when_parent_gone(parent_pid: int) -> None:
    """Start the watch on ``parent_pid``, this process's parent when it was started (a
    ``serve --workers`` worker on the ``serve`` that forked it: a killed ``serve`` left its
    workers answering on the port, with nothing left to stop them)."""
    threading.Thread(target=_watch, args=(parent_pid,), name="orphan-watch", daemon=True).start()


def stop_when_orphaned() -> None:
    """Start the watch if this process was started by `up` (no-op otherwise)."""
    value = os.environ.get(SUPERVISOR_PID_ENV)
    if not value or not value.isdigit():
        return
    supervisor_pid = int(value)
    if os.getppid() != supervisor_pid:
        return  # started by something else that kept the variable: not ours to watch
    stop_when_parent_gone(supervisor_pid)
