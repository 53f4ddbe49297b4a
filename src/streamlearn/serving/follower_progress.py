"""How a worker's follower is doing, as operators read it: when the broker last answered
its fetches, and how many records it has still to read.

aiokafka retries a fetch the broker does not answer (down, unreachable, a partition
without a leader) inside ``getmany``, which then returns nothing, as it does when nothing
was published: a worker that can no longer read ``model.state`` looked like one with
nothing new to read (``streamlearn_serve_follower_errors`` counts only what reaches the
follower). The broker answers a healthy follower's long poll at least every
``fetch_max_wait_ms`` (500), records or not, so the age of its last answer tells them
apart; the model's age alone cannot (a learner that publishes nothing ages it too).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FollowerProgress:
    """Per topic (the catalogue's name: ``model.state``, ``experiments``), the newest time
    the broker answered a fetch of any of its partitions, and the records between the
    follower's positions and the partitions' ends as last answered.

    Written by the follower on the event loop and read by a scrape (maybe another thread):
    plain floats and ints, replaced whole."""

    started_s: float = field(default_factory=time.time)
    """Before any answer, ages count from here: a worker that never reached the broker."""
    clock: Callable[[], float] = time.time
    _answered_s: dict[str, float] = field(default_factory=dict)
    _lag: dict[str, int] = field(default_factory=dict)

    def answered(self, topic: str, at_ms: int | None) -> None:
        """The broker answered a fetch of ``topic`` at ``at_ms`` (aiokafka's
        ``last_poll_timestamp``; None: not yet). Never moves back."""
        if at_ms is not None:
            self._answered_s[topic] = max(self._answered_s.get(topic, 0.0), at_ms / 1000)

    def behind(self, topic: str, records: int) -> None:
        """The follower is ``records`` behind the ends of ``topic``'s partitions."""
        self._lag[topic] = max(0, records)

    def answer_age_s(self, topic: str) -> float:
        """Seconds since the broker last answered a fetch of ``topic``."""
        since = self._answered_s.get(topic, self.started_s)
        return max(0.0, self.clock() - since)

    def lag_records(self, topic: str) -> float:
        """Records of ``topic`` not read yet, as of the last answer (NaN before one)."""
        lag = self._lag.get(topic)
        return math.nan if lag is None else float(lag)
