"""Residuals of served predictions (label - served score) per model, version and arm.

The label-join agent adds every example it emits and flushes one ``ModelMetrics`` record
per (model, version, arm) each window, for monitoring the models actually served.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

SOURCE = "label-join"


class ResidualAggregator:
    """Residuals (label - served score) per model, version and arm, between two flushes.

    The agent adds every emitted example and calls :meth:`flush` every window (say a
    minute); each flush returns one ``ModelMetrics`` record (source ``label-join``) per
    (model, version, arm) seen since the previous flush, over [previous flush, now].
    Held in memory: a crash loses at most one window of residuals, never examples.
    """

    def __init__(self, started: datetime) -> None:
        self.window_start = started
        self._sums: dict[tuple[str, int, str | None], list[float]] = {}

    def add(self, example: Mapping[str, Any]) -> None:
        key = (str(example["model_name"]), int(example["model_version"]), example.get("arm"))
        label, score = float(example["label"]), float(example["score"])
        residual = label - score
        sums = self._sums.setdefault(key, [0.0] * 6)
        sums[0] += 1
        sums[1] += residual
        sums[2] += abs(residual)
        sums[3] += residual * residual
        sums[4] += label
        sums[5] += score

    def flush(self, now: datetime) -> list[dict[str, Any]]:
        records = []
        for (model_name, version, arm), sums in sorted(
            self._sums.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        ):
            count = sums[0]
            records.append(
                {
                    "model_name": model_name,
                    "model_version": version,
                    "arm": arm,
                    "source": SOURCE,
                    "window_start_ts": self.window_start,
                    "window_end_ts": now,
                    "example_count": int(count),
                    "metrics": {
                        "mean_residual": sums[1] / count,
                        "mean_abs_residual": sums[2] / count,
                        "rmse_residual": (sums[3] / count) ** 0.5,
                        "mean_label": sums[4] / count,
                        "mean_score": sums[5] / count,
                    },
                    "emitted_ts": now,
                }
            )
        self._sums.clear()
        self.window_start = now
        return records
