"""The monitor's windows: a fixed reference, then windows of N records tied to offsets.

A monitored *stream* is one quantity of one input partition: a feature of one model and
arm as served, the score, a telemetry field's null rate for one producer, the share of
events preprocess filtered, the calibration of one model's served scores. Its first
``reference`` records are its reference (a numeric feature's bin edges are that
reference's quantiles, fixed once, never recomputed); after it, every ``window``
records close a window, compared with the reference. Thresholds are computed once, from
the reference, for a target false-alarm rate (:mod:`streamlearn.monitoring.thresholds`).

Everything here is a function of the records in offset order (no clock, no randomness
but a fixed seed), so a replay of the same log rebuilds the same windows and statistics,
and the state is JSON (it lives in the agent's changelog).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlearn.monitoring import (
    CategoricalHistogram,
    Histogram,
    NumericHistogram,
    drift_thresholds,
    histogram_from_json,
    rate_threshold,
    statistics,
)


@dataclass(frozen=True)
class WindowConfig:
    window: int = 200
    reference: int = 1000
    false_alarm_rate: float = 1e-3
    consecutive: int = 4
    calibration_consecutive: int = 2
    bins: int = 10
    top_k: int = 20
    reference_span_ms: int = 0

    def reference_complete(self, count: int, start_ms: int | None, at_ms: int) -> bool:
        """Whether a reference of ``count`` records, the first at ``start_ms``, is complete
        at ``at_ms``: it has its records and spans its event time, so a burst or a
        start-up transient (a few seconds of examples) cannot make it alone."""
        if count < self.reference:
            return False
        return start_ms is None or at_ms - start_ms >= self.reference_span_ms


def _reservoir_slot(key: str, seen: int) -> int:
    """Where the value offered after ``seen`` others goes in a reservoir sample (kept
    when below its size): uniform over 0..seen, and a function of the stream and the
    count alone, so a replay samples exactly the same values."""
    digest = hashlib.blake2b(f"{key}#{seen}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (seen + 1)


@dataclass(frozen=True)
class StreamId:
    """What one stream monitors."""

    scope: str
    feature: str
    model: str | None = None
    arm: str | None = None
    producer: str | None = None

    @property
    def key(self) -> str:
        return "/".join(
            (self.scope, self.model or "", self.arm or "", self.producer or "", self.feature)
        )


@dataclass
class Position:
    """Where a window's records came from."""

    topic: str
    first_offset: int = -1
    last_offset: int = -1
    start_ms: int = 0
    end_ms: int = 0

    def take(self, offset: int, at_ms: int) -> None:
        """A record at ``offset`` of event time ``at_ms``: the window spans its records'
        offsets, and in event time from its first record to the newest time read (a late
        record last would date the window, and an alert raised at its end, back to it)."""
        if self.first_offset < 0:
            self.first_offset, self.start_ms, self.end_ms = offset, at_ms, at_ms
        self.last_offset, self.end_ms = offset, max(self.end_ms, at_ms)

    def to_json(self) -> list[Any]:
        return [self.topic, self.first_offset, self.last_offset, self.start_ms, self.end_ms]

    @classmethod
    def from_json(cls, data: list[Any]) -> Position:
        return cls(str(data[0]), int(data[1]), int(data[2]), int(data[3]), int(data[4]))


@dataclass
class ClosedWindow:
    """A window's report (a ``DriftReport`` value but for the partition) and what crossed
    its threshold often enough in a row to alert: statistic → (value, threshold)."""

    stream: StreamId
    report: dict[str, Any]
    alerting: dict[str, tuple[float, float]] = field(default_factory=dict)


def report(
    stream: StreamId,
    kind: str,
    bins: list[str],
    reference: list[float],
    current: list[float],
    values: Mapping[str, float],
    thresholds: Mapping[str, float],
    position: Position,
    records: int,
    version: int | None,
) -> dict[str, Any]:
    return {
        "report_key": stream.key,
        "scope": stream.scope,
        "model_name": stream.model,
        "model_version": version,
        "arm": stream.arm,
        "producer": stream.producer,
        "feature": stream.feature,
        "kind": kind,
        "bins": bins,
        "reference_counts": reference,
        "current_counts": current,
        "statistics": dict(values),
        "thresholds": dict(thresholds),
        "drifted": any(values.get(s, 0.0) > t for s, t in thresholds.items()),
        "topic": position.topic,
        "partition": 0,
        "first_offset": position.first_offset,
        "last_offset": position.last_offset,
        "record_count": records,
        "window_start_ts": position.start_ms,
        "window_end_ts": position.end_ms,
    }


class Streaks:
    """Windows in a row over each statistic's threshold."""

    def __init__(self, counts: Mapping[str, int] | None = None) -> None:
        self.counts = dict(counts or {})

    def judge(
        self, values: Mapping[str, float], thresholds: Mapping[str, float], consecutive: int
    ) -> dict[str, tuple[float, float]]:
        alerting = {}
        for name, threshold in thresholds.items():
            value = values.get(name)
            over = value is not None and value > threshold
            self.counts[name] = self.counts.get(name, 0) + 1 if over else 0
            if over and self.counts[name] >= consecutive and value is not None:
                alerting[name] = (value, threshold)
        return alerting


MONITORED_CHARS = 64
"""A string value is monitored by its first characters. A stream is one record of the
monitor's store, and its reference sample keeps 1,000 values: of the 2,048 characters a
worker takes, that was a 2 MB record, twice the changelog's limit."""
NUMERIC_SHARE = 0.95
"""A feature whose reference values are numbers at least this often is numeric. Every one
of them had to be: one ``"n/a"`` a client sent made ``price``'s reference categorical,
and tripled prices then drifted in no window at all (found by a probe)."""


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


class HistogramStream:
    """A feature's (or the score's) distribution and null rate against its reference."""

    def __init__(self, stream: StreamId, topic: str, data: Mapping[str, Any] | None = None):
        self.stream = stream
        data = data or {}
        self.pending: list[Any] = list(data.get("pending", []))
        self.ref_n = int(data.get("ref_n", 0))
        self.ref_nulls = int(data.get("ref_nulls", 0))
        # The reference's values are a uniform sample (reservoir) of every value of its
        # span: bounded state whatever the traffic, and no bias from bursts.
        self.ref_values = int(data.get("ref_values", 0))
        self.ref_start: int | None = data.get("ref_start")
        ref = data.get("ref")
        self.reference: Histogram | None = None if ref is None else histogram_from_json(ref)
        self.ready = bool(data.get("ready", False))
        self.thresholds: dict[str, float] = dict(data.get("thr", {}))
        cur = data.get("cur")
        self.current: Histogram | None = None if cur is None else histogram_from_json(cur)
        self.n = int(data.get("n", 0))
        self.nulls = int(data.get("nulls", 0))
        self.version: int | None = data.get("version")
        position = data.get("pos")
        self.position = Position(topic) if position is None else Position.from_json(position)
        self.streaks = Streaks(data.get("streak"))

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "ref_n": self.ref_n,
            "ref_nulls": self.ref_nulls,
            "ref_values": self.ref_values,
            "ref_start": self.ref_start,
            "ref": None if self.reference is None else self.reference.to_json(),
            "ready": self.ready,
            "thr": self.thresholds,
            "cur": None if self.current is None else self.current.to_json(),
            "n": self.n,
            "nulls": self.nulls,
            "version": self.version,
            "pos": self.position.to_json(),
            "streak": self.streaks.counts,
        }

    @property
    def counts_absence(self) -> bool:
        """Whether a record without this feature counts in it (as missing): while its
        reference is taken, so the reference's null rate is the feature's, then wherever a
        missing value can cross the null-rate threshold. A name nearly always missing in
        its reference (a probe's made-up name, sent once) has a threshold capped at 1
        that no window crosses; filling its stream on every record would be work for
        good, for no judgement."""
        return not self.ready or self.thresholds.get("null_rate", 1.0) < 1.0

    def add(
        self, value: Any, offset: int, at_ms: int, version: int | None, config: WindowConfig
    ) -> ClosedWindow | None:
        if value.__class__ is str and len(value) > MONITORED_CHARS:
            current = self.current
            # A reference made before strings were cut keeps its full categories: a value
            # that is one of them still counts as it.
            if not (isinstance(current, CategoricalHistogram) and value in current.categories):
                value = value[:MONITORED_CHARS]
        if not self.ready:
            if self.ref_start is None:
                self.ref_start = at_ms
            self.ref_n += 1
            if value is None:
                self.ref_nulls += 1
            else:
                self._sample(value, config)
            if config.reference_complete(self.ref_n, self.ref_start, at_ms):
                self._fix_reference(config)
            return None
        self.position.take(offset, at_ms)
        if version is not None:
            self.version = version if self.version is None else max(self.version, version)
        self.n += 1
        if value is None:
            self.nulls += 1
        elif self.current is not None:
            if isinstance(self.current, NumericHistogram):
                number = _as_number(value)
                if number is None:
                    self.nulls += 1
                else:
                    self.current.add(number)
            else:
                self.current.add(str(value))
        if self.n < config.window:
            return None
        return self._close(config)

    def adopt(self, shared: HistogramStream) -> None:
        """Take ``shared``'s fixed reference (and its thresholds) in place of one of this
        stream's own first records: a new producer's event mix is compared with the mix
        before it, so a release that stops sending an event type shows (its own first
        events lacked it too, and matched every window after them)."""
        if shared.reference is not None:
            self.reference = histogram_from_json(shared.reference.to_json())
            self.current = self.reference.empty_like()
        self.ref_n, self.ref_nulls = shared.ref_n, shared.ref_nulls
        self.ref_values, self.ref_start = shared.ref_values, shared.ref_start
        self.thresholds = dict(shared.thresholds)
        self.pending = []
        self.ready = True

    def _sample(self, value: Any, config: WindowConfig) -> None:
        seen, self.ref_values = self.ref_values, self.ref_values + 1
        if len(self.pending) < config.reference:
            self.pending.append(value)
            return
        slot = _reservoir_slot(self.stream.key, seen)
        if slot < config.reference:
            self.pending[slot] = value

    def _fix_reference(self, config: WindowConfig) -> None:
        numbers = [n for v in self.pending if (n := _as_number(v)) is not None]
        if self.pending and len(numbers) >= NUMERIC_SHARE * len(self.pending):
            self.reference = NumericHistogram.from_reference(numbers, config.bins)
            # What is no number counts as missing, as it does in the windows after it.
            others = (len(self.pending) - len(numbers)) / len(self.pending)
            self.ref_nulls += round(others * (self.ref_n - self.ref_nulls))
        elif self.pending:
            self.reference = CategoricalHistogram.from_reference(
                [str(v) for v in self.pending], config.top_k
            )
        self.pending = []
        self.ready = True
        if self.reference is not None:
            # A window's nulls do not enter its histogram: the distribution statistics
            # judge the values it holds, about window x the reference's present share.
            present = round(config.window * (1 - self.ref_nulls / self.ref_n))
            self.thresholds = drift_thresholds(
                self.reference, max(1, present), false_alarm_rate=config.false_alarm_rate
            )
            self.current = self.reference.empty_like()
        self.thresholds["null_rate"] = rate_threshold(
            self.ref_nulls / self.ref_n,
            self.ref_n,
            config.window,
            false_alarm_rate=config.false_alarm_rate,
        )

    def _close(self, config: WindowConfig) -> ClosedWindow:
        values: dict[str, float] = {"null_rate": self.nulls / self.n}
        kind, bins, ref_counts, cur_counts = "rate", ["null", "present"], [], []
        if self.reference is not None and self.current is not None:
            kind = "numeric" if isinstance(self.reference, NumericHistogram) else "categorical"
            bins = self.reference.labels()
            ref_counts, cur_counts = list(self.reference.counts), list(self.current.counts)
            if self.current.total > 0:
                values.update(statistics(self.reference, self.current))
        else:
            ref_counts = [float(self.ref_nulls), float(self.ref_n - self.ref_nulls)]
            cur_counts = [float(self.nulls), float(self.n - self.nulls)]
        closed = ClosedWindow(
            self.stream,
            report(self.stream, kind, bins, ref_counts, cur_counts, values,
                    self.thresholds, self.position, self.n, self.version),
            self.streaks.judge(values, self.thresholds, config.consecutive),
        )  # fmt: skip
        self.n = self.nulls = 0
        self.version = None
        self.position = Position(self.position.topic)
        if self.current is not None:
            self.current = self.current.empty_like()
        return closed


class RateStream:
    """A share (of events with a field left empty, say) against the reference share.

    The reference is shared by every producer (``reference`` below belongs to the field);
    windows are per producer, so a new app version that stops populating a field is
    compared with what the field was before it."""

    def __init__(self, stream: StreamId, topic: str, data: Mapping[str, Any] | None = None):
        self.stream = stream
        data = data or {}
        self.n = int(data.get("n", 0))
        self.hits = int(data.get("hits", 0))
        position = data.get("pos")
        self.position = Position(topic) if position is None else Position.from_json(position)
        self.streaks = Streaks(data.get("streak"))

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "hits": self.hits,
            "pos": self.position.to_json(),
            "streak": self.streaks.counts,
        }

    def add(
        self,
        hit: bool,
        offset: int,
        at_ms: int,
        reference: tuple[int, int],
        statistic: str,
        config: WindowConfig,
        window: int | None = None,
    ) -> ClosedWindow | None:
        """Count one record; ``reference`` is (records, hits) of the fixed reference."""
        self.position.take(offset, at_ms)
        self.n += 1
        self.hits += hit
        if self.n < (window or config.window):
            return None
        return self.close(reference, statistic, config)

    def close(
        self, reference: tuple[int, int], statistic: str, config: WindowConfig
    ) -> ClosedWindow:
        ref_n, ref_hits = reference
        threshold = rate_threshold(
            ref_hits / ref_n, ref_n, self.n, false_alarm_rate=config.false_alarm_rate
        )
        values = {statistic: self.hits / self.n}
        thresholds = {statistic: threshold}
        labels = ["yes", "no"]
        closed = ClosedWindow(
            self.stream,
            report(self.stream, "rate", labels, [float(ref_hits), float(ref_n - ref_hits)],
                    [float(self.hits), float(self.n - self.hits)], values, thresholds,
                    self.position, self.n, None),
            self.streaks.judge(values, thresholds, config.consecutive),
        )  # fmt: skip
        self.n = self.hits = 0
        self.position = Position(self.position.topic)
        return closed
