"""The alerts list and timeline: the newest alerts first, and how many of each severity
were raised per minute over the history window.

Alerts come from ``monitoring.alerts`` (one partition, so in the order they were raised,
but a dashboard reads the whole topic at start: 30 days of alerts). The list keeps the
newest ``keep``; the timeline counts per minute, bounded like every series.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from typing import Any

from streamlearn.dashboard.history import DEFAULT_WINDOW_S, Table
from streamlearn.dashboard.values import epoch_s, finite

SEVERITIES = ("info", "warning", "critical")
MAX_ALERTS = 200
BUCKET_S = 60.0
GROUP_S = 120.0
"""Alerts of one key raised within this of each other are one entry of the list: the
monitor judges each partition on its own, so one condition is alerted once per partition
(windows of different partitions close seconds apart); the cooldown (minutes) keeps the
next occurrence apart."""


def alert_view(record: Mapping[str, Any], offset: int | None = None) -> dict[str, Any]:
    """What the page needs of an ``Alert``."""
    severity = str(record.get("severity") or "warning")
    labels = record.get("labels") or {}
    return {
        "key": str(record.get("alert_key")),
        "kind": record.get("kind"),
        "severity": severity if severity in SEVERITIES else "warning",
        "message": record.get("message"),
        "model": record.get("model_name"),
        "model_version": record.get("model_version"),
        "value": finite(record.get("value")),
        "threshold": finite(record.get("threshold")),
        "labels": {str(k): str(v) for k, v in sorted(labels.items())},
        "source": record.get("source"),
        "raised_ts": epoch_s(record.get("raised_ts")),
        "offset": offset,
        "count": 1,
        "first_raised_ts": epoch_s(record.get("raised_ts")),
        "partitions": [str(labels["partition"])] if "partition" in labels else [],
    }


class AlertLog:
    """The newest alerts and per-minute counts by severity."""

    def __init__(self, keep: int = MAX_ALERTS, window_s: float = DEFAULT_WINDOW_S) -> None:
        self.keep = keep
        self.items: list[dict[str, Any]] = []
        """Newest first (by time raised)."""
        self.total = 0
        self.by_severity = dict.fromkeys(SEVERITIES, 0)
        self.timeline = Table(SEVERITIES, window_s=window_s)

    def add(self, record: Mapping[str, Any], offset: int | None = None) -> None:
        view = alert_view(record, offset)
        self.total += 1
        self.by_severity[view["severity"]] += 1
        raised = view["raised_ts"] or 0.0
        self._list(view, raised)
        bucket = raised - raised % BUCKET_S
        column = self.timeline.values[view["severity"]]
        index = bisect.bisect_left(self.timeline.times, bucket)
        if index < len(self.timeline.times) and self.timeline.times[index] == bucket:
            column[index] = (column[index] or 0.0) + 1
        else:
            self.timeline.add(bucket, {s: float(s == view["severity"]) for s in SEVERITIES})

    def _list(self, view: dict[str, Any], raised: float) -> None:
        """``view`` into the list, newest first: as its own entry, or into the entry of the
        same key raised within :data:`GROUP_S` (shown as the newest of them, with their
        count and partitions)."""
        for position, item in enumerate(self.items):
            first, newest = item["first_raised_ts"] or 0.0, item["raised_ts"] or 0.0
            if item["key"] == view["key"] and first - GROUP_S <= raised <= newest + GROUP_S:
                del self.items[position]
                partitions = sorted({*item["partitions"], *view["partitions"]}, key=_numeric)
                if raised < newest:  # read out of order: the entry stays the newest one's
                    view = dict(item)
                view.update(
                    count=item["count"] + 1,
                    first_raised_ts=min(first, raised),
                    partitions=partitions,
                )
                raised = max(raised, newest)
                break
        keys = [-(item["raised_ts"] or 0.0) for item in self.items]
        self.items.insert(bisect.bisect_right(keys, -raised), view)
        del self.items[self.keep :]

    def timeline_columns(self) -> dict[str, list[float | None]]:
        """Per-minute counts, every minute from the first to the last (0 when none)."""
        times = self.timeline.times
        if not times:
            return {"t": [], **{s: [] for s in SEVERITIES}}
        minutes = [
            times[0] + i * BUCKET_S for i in range(round((times[-1] - times[0]) / BUCKET_S) + 1)
        ]
        known = {t: i for i, t in enumerate(times)}
        columns: dict[str, list[float | None]] = {"t": list(minutes)}
        for severity in SEVERITIES:
            values = self.timeline.values[severity]
            columns[severity] = [values[known[t]] or 0.0 if t in known else 0.0 for t in minutes]
        return columns

    def state(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "total": self.total,
            "by_severity": dict(self.by_severity),
            "timeline": self.timeline_columns(),
            "bucket_s": BUCKET_S,
        }


def _numeric(partition: str) -> tuple[int, str]:
    return (int(partition), "") if partition.isdigit() else (1 << 62, partition)
