"""The newest drift reports of each monitored quantity, for the drift section.

The monitor agent writes one ``DriftReport`` per monitored quantity (``report_key``: scope,
model, arm, producer, feature), input partition and closed window, with the reference's
and the window's histogram over the same bins, the statistics it computed and the
thresholds that alert. Partitions are monitored separately (each has its own reference
and bins), so a quantity has a newest window per partition; the card shows the newest
window that drifted if any partition's newest did (that is the one to look at), else the
newest of all, and says in how many partitions the newest window drifted. Records of
several partitions arrive in any order: "newest" is by window end, then offset.

A ``calibration`` report is a reliability diagram rather than two histograms: its bins
are score bins, its reference values the bins' mean scores and its current values their
label rates (see ``agents/monitor_streams.py``); the page draws it as such.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlearn.dashboard.history import Recent
from streamlearn.dashboard.values import epoch_s, finite, finite_map

MAX_REPORT_KEYS = 500


def crossed(
    statistics: Mapping[str, float | None], thresholds: Mapping[str, float | None]
) -> list[str]:
    """The statistics over their threshold (as the monitor judges: strictly over)."""
    return sorted(
        name
        for name, threshold in thresholds.items()
        if threshold is not None
        and (value := statistics.get(name)) is not None
        and value > threshold
    )


def report_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the page needs of a ``DriftReport``."""
    statistics = finite_map(record.get("statistics"))
    thresholds = finite_map(record.get("thresholds"))
    return {
        "key": str(record["report_key"]),
        "scope": record.get("scope"),
        "model": record.get("model_name"),
        "model_version": record.get("model_version"),
        "arm": record.get("arm"),
        "producer": record.get("producer"),
        "feature": record.get("feature"),
        "kind": record.get("kind"),
        "bins": [str(b) for b in record.get("bins") or []],
        "reference": [finite(c) or 0.0 for c in record.get("reference_counts") or []],
        "current": [finite(c) or 0.0 for c in record.get("current_counts") or []],
        "statistics": statistics,
        "thresholds": thresholds,
        "crossed": crossed(statistics, thresholds),
        "drifted": bool(record.get("drifted")),
        "topic": record.get("topic"),
        "partition": record.get("partition"),
        "first_offset": record.get("first_offset"),
        "last_offset": record.get("last_offset"),
        "record_count": record.get("record_count"),
        "window_start_ts": epoch_s(record.get("window_start_ts")),
        "window_end_ts": epoch_s(record.get("window_end_ts")),
    }


def _order(view: Mapping[str, Any]) -> tuple[float, int]:
    return (view["window_end_ts"] or 0.0, int(view["last_offset"] or 0))


@dataclass
class DriftKey:
    """One monitored quantity: the newest report of each partition and window counts."""

    newest: dict[int, dict[str, Any]] = field(default_factory=dict)
    windows: int = 0
    drifted_windows: int = 0

    def add(self, view: dict[str, Any]) -> None:
        self.windows += 1
        self.drifted_windows += int(view["drifted"])
        partition = int(view["partition"] or 0)
        known = self.newest.get(partition)
        if known is None or _order(view) >= _order(known):
            self.newest[partition] = view

    def shown(self) -> dict[str, Any]:
        reports = list(self.newest.values())
        drifted = [r for r in reports if r["drifted"]]
        report = max(drifted or reports, key=_order)
        return {
            **report,
            "drifted": bool(drifted),
            "windows": self.windows,
            "drifted_windows": self.drifted_windows,
            "partitions": len(reports),
            "drifted_partitions": len(drifted),
        }


class DriftBoard:
    """The monitored quantities, each with its newest reports."""

    def __init__(self, keep: int = MAX_REPORT_KEYS) -> None:
        self.keys: Recent[str, DriftKey] = Recent(keep)

    def add(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Take a report in; its view."""
        view = report_view(record)
        self.keys.get_or_create(view["key"], DriftKey).add(view)
        return view

    def state(self) -> dict[str, Any]:
        reports = [entry.shown() for _, entry in self.keys.items()]
        # Drifted first, then by key: what needs a look is at the top.
        reports.sort(key=lambda r: (not r["drifted"], r["key"]))
        return {
            "reports": reports,
            "drifted": sum(1 for r in reports if r["drifted"]),
            "total": len(reports),
        }
