"""librdkafka's own log lines in long-running processes: through Python's logging, each
kind said once per window.

With the broker away, a librdkafka client asked for metadata retries its connection
every 50 ms or so and logs every failure: a dashboard printed ~400 identical
"Connect to ... failed: Connection refused" lines in ten seconds, burying the one line
that said what was wrong. Given to a client as its ``logger`` (see
:func:`streamlearn.kafka_clients.confluent_config`), :data:`CLIENT_LOG` says the first
line of a kind, keeps quiet about the same line for :data:`REPEAT_WINDOW_S`, and then
says it again with how many it left out. Lines reach it when the client is polled
(librdkafka queues them), which every long-lived client here does.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REPEAT_WINDOW_S = 30.0
MAX_KINDS = 512
"""Kinds remembered at most (the oldest are forgotten first): a bound on memory whatever
librdkafka says."""

_ELAPSED = re.compile(r"\d+ms")


@dataclass
class _Said:
    at: float
    left_out: int = 0


class RepeatedLineFilter(logging.Filter):
    """Passes a librdkafka line unless the same kind passed less than ``window_s`` ago;
    the next one to pass after the window says how many were left out. A kind is the
    facility and the text without elapsed times, whichever client said it (two clients of
    one process failing to reach the same broker are one story)."""

    def __init__(
        self,
        window_s: float = REPEAT_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_kinds: int = MAX_KINDS,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.max_kinds = max_kinds
        self._said: dict[tuple[str, str], _Said] = {}
        # librdkafka's lines arrive on whichever thread polls each client.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        kind = _kind(record)
        with self._lock:
            now = self.clock()
            said = self._said.get(kind)
            if said is not None and now - said.at < self.window_s:
                said.left_out += 1
                return False
            left_out = 0 if said is None else said.left_out
            self._said.pop(kind, None)  # re-inserted last: the dict stays oldest first
            self._said[kind] = _Said(now)
            while len(self._said) > self.max_kinds:
                del self._said[next(iter(self._said))]
        if left_out:
            record.msg = (
                f"{record.getMessage()} (and {left_out:,} more like it "
                f"in the last {self.window_s:.0f} s)"
            )
            record.args = None
        return True


def _kind(record: logging.LogRecord) -> tuple[str, str]:
    # confluent-kafka logs ("%s [%s] %s", facility, client name, text).
    args = record.args
    if isinstance(args, tuple) and len(args) == 3:
        return str(args[0]), _ELAPSED.sub("", str(args[2]))
    return "", _ELAPSED.sub("", record.getMessage())


CLIENT_LOG = logging.getLogger("librdkafka")
CLIENT_LOG.addFilter(RepeatedLineFilter())
