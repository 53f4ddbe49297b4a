"""The calibration stream: one model's (and arm's) served scores against the labels they
earned, windowed like the other streams (:mod:`streamlearn.agents.monitor_streams`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from statistics import NormalDist
from typing import Any

from streamlearn.agents.monitor_streams import (
    ClosedWindow,
    Position,
    Streaks,
    StreamId,
    WindowConfig,
    report,
)
from streamlearn.monitoring import ReliabilityBins

_Z = NormalDist()


class CalibrationStream:
    """One model's (and arm's) served scores against the labels they earned.

    Statistics: expected calibration error (ECE), mean residual (label - score) and log
    loss. The reference is the first examples' figures; a window alerts when its ECE or
    its mean residual moves further from the reference's than sampling noise explains at
    the configured false-alarm rate (the noise of each score bin's label rate is
    binomial around the bin's mean score)."""

    def __init__(self, stream: StreamId, topic: str, data: Mapping[str, Any] | None = None):
        self.stream = stream
        data = data or {}
        ref = data.get("ref")
        self.reference = ReliabilityBins() if ref is None else ReliabilityBins.from_json(ref)
        self.ref_start: int | None = data.get("ref_start")
        self.ready = bool(data.get("ready", False))
        cur = data.get("cur")
        self.current = ReliabilityBins() if cur is None else ReliabilityBins.from_json(cur)
        self.version: int | None = data.get("version")
        position = data.get("pos")
        self.position = Position(topic) if position is None else Position.from_json(position)
        self.streaks = Streaks(data.get("streak"))

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.reference.to_json(),
            "ref_start": self.ref_start,
            "ready": self.ready,
            "cur": self.current.to_json(),
            "version": self.version,
            "pos": self.position.to_json(),
            "streak": self.streaks.counts,
        }

    def add(
        self,
        score: float,
        label: float,
        offset: int,
        at_ms: int,
        version: int | None,
        config: WindowConfig,
    ) -> ClosedWindow | None:
        if not self.ready:
            if self.ref_start is None:
                self.ref_start = at_ms
            self.reference.add(score, label)
            self.ready = config.reference_complete(int(self.reference.count), self.ref_start, at_ms)
            return None
        self.position.take(offset, at_ms)
        if version is not None:
            self.version = version if self.version is None else max(self.version, version)
        self.current.add(score, label)
        if self.current.count < config.window:
            return None
        return self._close(config)

    def _thresholds(self, config: WindowConfig) -> dict[str, float]:
        z = _Z.inv_cdf(1 - config.false_alarm_rate)
        rows = self.current.rows()
        total = sum(count for _, _, count in rows)
        spread = [
            (count / total, math.sqrt(max(s * (1 - s), 1e-4) / count)) for s, _, count in rows
        ]
        expected = sum(w * sd for w, sd in spread) * math.sqrt(2 / math.pi)
        noise = math.sqrt(sum((w * sd) ** 2 for w, sd in spread))
        mean_score = sum(s * count for s, _, count in rows) / total
        overall = math.sqrt(
            max(mean_score * (1 - mean_score), 1e-4) * (1 / total + 1 / self.reference.count)
        )
        return {
            "ece": self.reference.ece() + expected + z * noise,
            "abs_residual_shift": z * overall,
        }

    def _close(self, config: WindowConfig) -> ClosedWindow:
        thresholds = self._thresholds(config)
        values = {
            "ece": self.current.ece(),
            "mean_residual": self.current.mean_residual(),
            "abs_residual_shift": abs(
                self.current.mean_residual() - self.reference.mean_residual()
            ),
            "log_loss": self.current.log_loss(),
        }
        bins = [f"{mean:.2f}" for mean, _, _ in self.current.rows()]
        closed = ClosedWindow(
            self.stream,
            report(self.stream, "calibration", bins,
                    [score for score, _, _ in self.current.rows()],
                    [label for _, label, _ in self.current.rows()], values, thresholds,
                    self.position, int(self.current.count), self.version),
            self.streaks.judge(values, thresholds, config.calibration_consecutive),
        )  # fmt: skip
        self.current = ReliabilityBins()
        self.version = None
        self.position = Position(self.position.topic)
        return closed
