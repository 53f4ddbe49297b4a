"""Repeated log lines, once per interval: a client library that cannot reach Kafka logs the
same error on every retry (aiokafka: ~80 lines a second per agent, the schema registry
10,000 in two minutes; librdkafka ~20 a second per client), which buries what else the log
says and fills disks.

:class:`RepeatedLines` passes a line, drops the same line (numbers aside) for ``every_s``
seconds, and the first one after that says how many it dropped. Installed on the loggers of
both Kafka clients in every long-running process: aiokafka's (:func:`quiet_repeats`, from
:func:`streamlearn.cli_common.command_settings`) and :data:`LIBRDKAFKA_LOG`, which
confluent-kafka's clients of those processes log through
(:func:`streamlearn.kafka_clients.confluent_config`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

_NUMBERS = re.compile(r"\d+")
_LIBRDKAFKA_COUNT = re.compile(r", # identical error\(s\) suppressed")
"""What librdkafka adds to an error it repeats after suppressing identical ones itself
(numbers already replaced): the same line."""
MAX_LINES = 1024
"""Distinct lines remembered; the oldest is forgotten first."""


class RepeatedLines(logging.Filter):
    """A logging filter: the same line (its level, logger and text, numbers aside) passes
    once per ``every_s`` seconds; the next one to pass counts the ones dropped."""

    def __init__(self, every_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.every_s = every_s
        self.clock = clock
        self._seen: OrderedDict[tuple[str, int, str], list[float]] = OrderedDict()
        """line → [when it last passed, lines dropped since]."""
        # librdkafka's lines arrive on whichever thread polls each client.
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        key = (record.name, record.levelno, _LIBRDKAFKA_COUNT.sub("", _NUMBERS.sub("#", text)))
        with self._lock:
            now = self.clock()
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.every_s:
                seen[1] += 1
                return False
            dropped = 0 if seen is None else int(seen[1])
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > MAX_LINES:
                self._seen.popitem(last=False)
        if dropped:
            # As "%s" and one argument: every formatter formats msg % args (mode's always,
            # logging's when there are args), and the text may hold a '%'.
            record.msg = "%s"
            record.args = (f"{text} (and {dropped} more like it in the last {self.every_s:g}s)",)
        return True


def quiet_repeats(prefixes: tuple[str, ...], every_s: float = 10.0) -> RepeatedLines:
    """One :class:`RepeatedLines` on every logger already made whose name starts with one of
    ``prefixes`` (a filter on a logger applies to its own lines only, so each gets it) and
    that has none yet."""
    repeated = RepeatedLines(every_s)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(prefixes):
            logger = logging.getLogger(name)
            if not any(isinstance(f, RepeatedLines) for f in logger.filters):
                logger.addFilter(repeated)
    return repeated


LIBRDKAFKA_LOG = logging.getLogger("librdkafka")
"""The logger of confluent-kafka's clients in long-running processes: librdkafka's lines
(``FAIL [rdkafka#consumer-1] [thrd:...]: ... Connection refused``) reach it when the client
is polled, each kind once per interval."""
LIBRDKAFKA_LOG.addFilter(RepeatedLines())
