"""One `up` per data directory.

Two `up`s in one data directory share its embedded broker (the second finds it running
and takes it for the user's own), its consumer groups, its logs and its archive: two
learners then publish every model, and both summaries count each other's records. `up`
holds an exclusive ``flock`` on ``$STREAMLEARN_DATA_DIR/up.lock`` while it runs; the
kernel lets it go however `up` ends (SIGKILL included), so a stale lock never blocks the
next run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from streamlearn.exceptions import StreamlearnError

LOCK_FILE = "up.lock"


@contextlib.contextmanager
def one_up_per_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock while the block runs; :class:`StreamlearnError`
    naming the running `up`'s pid when another holds it."""
    if not data_dir.exists():
        # Owner only: the archive's files under it keep telemetry as it came (raw IPs).
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(mode=0o700, exist_ok=True)
    path = data_dir / LOCK_FILE
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
            raise StreamlearnError(
                f"another `streamlearn up` runs in {data_dir} (pid {holder or 'unknown'}): "
                "stop it, or give this one another STREAMLEARN_DATA_DIR"
            ) from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)  # lets the lock go
