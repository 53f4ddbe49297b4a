"""When a worker commits beyond Faust's timer: soon after it has caught up with its input.

Faust commits acknowledged offsets every ``broker_commit_interval`` (2.8 s) and every
``broker_commit_every`` acknowledgements. A batch that reaches its partition's end (the
high watermark its fetch reported) is the last one for a while, so its offsets would wait
up to a whole interval: a stream read to its end was committed seconds after it was
processed (``bench/ingest.py``'s "until committed", docs/agents.md "Performance"). Now a
batch that catches its partition up asks for a commit, made at most once per ``gap_s``
so that a live stream that is always caught up commits a few times a second, not once
per batch. Commits only ever cover acknowledged batches (outputs delivered, state
written), so committing earlier changes nothing of what a restart reads again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

CAUGHT_UP_COMMIT_GAP_S = 0.2
"""At most one caught-up commit per this many seconds."""
STOP_WAIT_S = 5.0
"""How long a stopping worker lets a commit under way finish (a healthy one takes ms)."""


class CaughtUpCommits:
    """Debounced commits requested by batches that reached their partition's end."""

    def __init__(
        self,
        commit: Callable[[], Awaitable[Any]],
        *,
        gap_s: float = CAUGHT_UP_COMMIT_GAP_S,
        clock: Callable[[], float] = time.monotonic,
        stop_wait_s: float = STOP_WAIT_S,
    ) -> None:
        self._commit = commit
        self._stop_wait_s = stop_wait_s
        self._gap_s = gap_s
        self._clock = clock
        self._last = -float("inf")
        self._wanted = False
        self._task: asyncio.Task[None] | None = None
        self._committing = False
        self._stopped = False

    def request(self) -> None:
        """Commit soon (now, or ``gap_s`` after the previous one); requests made while a
        commit is waited for or running are covered by one more commit after it."""
        self._wanted = True
        if not self._stopped and (self._task is None or self._task.done()):
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self._wanted and not self._stopped:
            wait = self._last + self._gap_s - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wanted = False
            self._last = self._clock()
            self._committing = True
            try:
                await self._commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the periodic commit retries
                log.warning(
                    "commit after catching up failed (the next periodic one retries): %r", exc
                )
            finally:
                self._committing = False

    async def stop(self) -> None:
        """No more commits from here: one waiting for its turn is dropped (the consumer
        commits itself when it stops), one under way is let finish (a commit cancelled
        half-way through Faust's bookkeeping could leave it waiting on it), for
        ``stop_wait_s``: with the broker away a commit waits for it to come back, and a
        worker told to stop waited as long (11.5 minutes once). Then it is cancelled: what
        it would have committed is read again after the restart, as after a crash."""
        self._stopped = True
        task, self._task = self._task, None
        if task is None or task.done():
            return
        if self._committing:
            done, _ = await asyncio.wait({task}, timeout=self._stop_wait_s)
            if done:
                return
            log.warning(
                "a commit under way did not finish in %g s (Kafka away?): abandoned; the "
                "next start reads again from the last commit",
                self._stop_wait_s,
            )
        task.cancel()
        await asyncio.wait({task}, timeout=self._stop_wait_s)
