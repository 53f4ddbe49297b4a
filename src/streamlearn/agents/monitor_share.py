"""The share of events preprocess filtered, per bucket of received time: a monitored
stream built from two topics (``telemetry.events`` and ``events.clean``) whose result must
not depend on how reading them interleaved (see :class:`PipelineShare`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streamlearn.agents.monitor_streams import (
    ClosedWindow,
    Position,
    RateStream,
    Streaks,
    StreamId,
    WindowConfig,
)


class PipelineShare:
    """The share of events preprocess filtered (bots, duplicates, invalid), per bucket of
    ``bucket_ms`` of received time: 1 - clean events / raw events.

    Raw events (``telemetry.events``) and clean ones (``events.clean``) are counted per
    bucket, each side closing a bucket when its own records' received time has passed
    the bucket's end by one more bucket (a grace for records slightly out of order).
    A bucket is judged once both sides closed it, so what is judged depends on each
    topic's records alone, not on how reading the two interleaved. The first buckets up
    to ``reference`` raw events are the reference."""

    def __init__(
        self,
        stream: StreamId,
        topic: str,
        bucket_ms: int,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.stream, self.topic, self.bucket_ms = stream, topic, bucket_ms
        data = data or {}
        # bucket (as str: JSON keys) -> [raw count, first offset, last offset]
        self.raw_open: dict[str, list[int]] = {k: list(v) for k, v in data.get("raw", {}).items()}
        self.clean_open: dict[str, int] = dict(data.get("clean", {}))
        self.raw_done: dict[str, list[int]] = {
            k: list(v) for k, v in data.get("raw_done", {}).items()
        }
        self.clean_done: dict[str, int] = dict(data.get("clean_done", {}))
        self.raw_clock = int(data.get("raw_clock", 0))
        self.clean_clock = int(data.get("clean_clock", 0))
        self.ref_n = int(data.get("ref_n", 0))
        self.ref_hits = int(data.get("ref_hits", 0))
        self.ref_start: int | None = data.get("ref_start")
        self.streaks = Streaks(data.get("streak"))

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw_open,
            "clean": self.clean_open,
            "raw_done": self.raw_done,
            "clean_done": self.clean_done,
            "raw_clock": self.raw_clock,
            "clean_clock": self.clean_clock,
            "ref_n": self.ref_n,
            "ref_hits": self.ref_hits,
            "ref_start": self.ref_start,
            "streak": self.streaks.counts,
        }

    def _closable(self, clock: int, buckets: Iterable[str]) -> list[str]:
        return sorted((b for b in buckets if (int(b) + 2) * self.bucket_ms <= clock), key=int)

    def _late(self, at_ms: int, clock: int) -> bool:
        """A record of a bucket its side has closed already: not counted (it would make
        what is judged depend on when the other side caught up)."""
        return at_ms // self.bucket_ms <= clock // self.bucket_ms - 2

    def raw(self, offset: int, at_ms: int, config: WindowConfig) -> list[ClosedWindow]:
        if self._late(at_ms, self.raw_clock):
            return []
        bucket = str(at_ms // self.bucket_ms)
        counts = self.raw_open.setdefault(bucket, [0, offset, offset])
        counts[0] += 1
        counts[1], counts[2] = min(counts[1], offset), max(counts[2], offset)
        self.raw_clock = max(self.raw_clock, at_ms)
        for done in self._closable(self.raw_clock, self.raw_open):
            self.raw_done[done] = self.raw_open.pop(done)
        return self._judge(config)

    def clean(self, at_ms: int, config: WindowConfig) -> list[ClosedWindow]:
        if self._late(at_ms, self.clean_clock):
            return []
        bucket = str(at_ms // self.bucket_ms)
        self.clean_open[bucket] = self.clean_open.get(bucket, 0) + 1
        self.clean_clock = max(self.clean_clock, at_ms)
        for done in self._closable(self.clean_clock, self.clean_open):
            self.clean_done[done] = self.clean_open.pop(done)
        return self._judge(config)

    def _judge(self, config: WindowConfig) -> list[ClosedWindow]:
        closed = []
        # A bucket that one side closed without records is empty on that side.
        clean_edge = (self.clean_clock // self.bucket_ms) - 1
        raw_edge = (self.raw_clock // self.bucket_ms) - 1
        for bucket in sorted(self.raw_done, key=int):
            if bucket not in self.clean_done and int(bucket) >= clean_edge:
                continue
            raw_n, first, last = self.raw_done.pop(bucket)
            clean_n = min(self.clean_done.pop(bucket, 0), raw_n)
            filtered = raw_n - clean_n
            start = int(bucket) * self.bucket_ms
            if self.ref_start is None:
                self.ref_start = start
            # Whole buckets until the reference has its records and spans its time.
            if self.ref_n < config.reference or start - self.ref_start < config.reference_span_ms:
                self.ref_n += raw_n
                self.ref_hits += filtered
                continue
            window = RateStream(self.stream, self.topic)
            window.n, window.hits = raw_n, filtered
            window.position = Position(self.topic, first, last, start, start + self.bucket_ms)
            window.streaks = self.streaks
            closed.append(window.close((self.ref_n, self.ref_hits), "filtered_share", config))
        # Clean buckets the raw side never had (clock skew between the two): forget them.
        for bucket in [b for b in self.clean_done if int(b) < raw_edge - 1]:
            if bucket not in self.raw_done:
                del self.clean_done[bucket]
        return closed
