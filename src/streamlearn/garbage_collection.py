"""The cyclic garbage collector's settings for a long-running streamlearn process.

CPython's collector scans the young generation every 700 net container allocations
(allocations less deallocations). A worker that holds a batch of decoded records (dicts,
tuples) while it processes them crosses that count many times per batch, and every scan
walks whatever young objects are alive, the batch's records included, only to find them
alive; the older generations are scanned in turn, and a full collection walks every
object the process made at start-up (Faust, aiokafka, River, scipy: about 170,000). In
the learner agent that was about a sixth of its CPU (0.74 s of collections in the 4 s it
took to learn 50,000 examples, timed with ``gc.callbacks``; 0.05 s with this module).

:func:`settle_long_lived_heap`, called once a process has built what it keeps for its
lifetime, moves all of that into the permanent generation (``gc.freeze``: never scanned)
and raises the young threshold so that a batch's records are usually freed by reference
counting before a scan ever sees them. Cyclic garbage is still collected, only in larger
steps; the older generations keep Python's thresholds.

``streamlearn agents run`` settles its heap just before the Faust worker starts, and
``streamlearn serve`` just before its app does (``serving/runner.py``): a batch request's
containers live until the telemetry drain has encoded them, and Python's threshold had
the collector scan them over and over (batches of 32: 0.6 µs of CPU a prediction, 4 %;
single requests are within the noise either way).

:func:`paced_collections` sets the same thresholds for a stretch of work inside a process
that is not ours to settle (a library call: the learning lab's run) and puts the caller's
back afterwards. The lab keeps what it judges (every prediction served, its feedback), so
with Python's thresholds each full collection walked a heap that only grows: 12 of them
took 2.9 s of a 24 s run of 30 simulated minutes; paced, the collector takes 0.8 s.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 50_000
"""Net container allocations between two scans of the young generation (Python's: 700).
Above the live containers of one batch of every agent, so a batch rarely triggers one;
chosen with ``bench/learner.py`` and ``bench/ingest.py`` (docs/agents.md)."""
OLDER_THRESHOLDS = (10, 10)
"""Python's: the middle generation every 10 young scans, the oldest every 10 of those
(and only when it grew by a quarter since the last full collection)."""


def settle_long_lived_heap(young_threshold: int = YOUNG_THRESHOLD) -> None:
    """Freeze every object alive now out of the collector's scans and set the young
    generation's threshold (call once, when the process has finished starting up)."""
    gc.collect()  # what start-up left as garbage is freed, not frozen for good
    gc.freeze()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)


@contextmanager
def paced_collections(young_threshold: int = YOUNG_THRESHOLD) -> Iterator[None]:
    """Within the block, the collector's thresholds are ``young_threshold`` and
    :data:`OLDER_THRESHOLDS`; the ones before are restored when it ends, however it ends.
    Nothing is frozen: the caller's heap stays the caller's."""
    before = gc.get_threshold()
    gc.set_threshold(young_threshold, *OLDER_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
