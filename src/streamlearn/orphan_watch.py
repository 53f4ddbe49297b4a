"""A supervised part stops itself when its supervisor is gone.

`up` starts each part in its own process group (so a Ctrl-C reaches `up` alone) and names
itself in ``STREAMLEARN_SUPERVISOR_PID``. If `up` dies without stopping them (SIGKILL, a
crash of the interpreter), the parts are re-parented; each notices within a second and
sends itself SIGTERM, which every long-running command handles as a clean stop (offsets
committed, producers flushed). Without this, a killed `up` left them running and holding
their ports.
"""

from __future__ import annotations

import os
import signal
import threading
import time

SUPERVISOR_PID_ENV = "STREAMLEARN_SUPERVISOR_PID"
CHECK_INTERVAL_S = 1.0


def _watch(supervisor_pid: int) -> None:
    while os.getppid() == supervisor_pid:
        time.sleep(CHECK_INTERVAL_S)
    os.kill(os.getpid(), signal.SIGTERM)


def stop_when_orphaned() -> None:
    """Start the watch if this process was started by `up` (no-op otherwise)."""
    value = os.environ.get(SUPERVISOR_PID_ENV)
    if not value or not value.isdigit():
        return
    supervisor_pid = int(value)
    if os.getppid() != supervisor_pid:
        return  # started by something else that kept the variable: not ours to watch
    threading.Thread(
        target=_watch, args=(supervisor_pid,), name="orphan-watch", daemon=True
    ).start()
