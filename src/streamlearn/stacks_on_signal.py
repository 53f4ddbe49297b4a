"""SIGQUIT writes where each thread of a streamlearn process is, and the process goes on.

A part that does not stop within its grace, or stops answering, is killed; without this, what
it was waiting for went with it. As the JVM does on ``kill -QUIT``, every command writes
each of its threads' Python stacks to its stderr (a part's log under `up`, the pod's log
under Kubernetes) on SIGQUIT: `up`'s supervisor sends it before it kills a part that did
not stop in time, and an operator can send it to a live process to see where it waits.
:mod:`faulthandler` writes from the signal handler itself, so it works while the event loop
or every thread is blocked, in Python or in a C call (a Kafka client's flush).
"""

from __future__ import annotations

import faulthandler
import signal
import sys

STACKS_SIGNAL = signal.SIGQUIT
"""What `up` sends a part before it kills it: faust's worker takes SIGUSR1 and SIGUSR2
for itself, and nothing else in the project's libraries handles SIGQUIT."""


def write_stacks_on_signal() -> None:
    """Register the handler (to this process's stderr, every thread; not chained: SIGQUIT's
    default action would end the process with a core dump). A fatal signal (a segfault in
    a C extension) writes them too, and then ends the process as it would have. Nothing when
    stderr is not a file (the command run in-process with its output captured)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return
    faulthandler.register(STACKS_SIGNAL, all_threads=True, chain=False)
    faulthandler.enable(all_threads=True)
