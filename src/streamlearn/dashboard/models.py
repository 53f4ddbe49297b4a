"""What the page shows of the models: versions over time, prequential and served metrics,
calibration, and the experiment arms seen in the metrics.

Three record types feed it. ``model.state`` snapshots give a model's versions (only their
metadata is read: see :mod:`streamlearn.dashboard.decoding`); the learner's
``model.metrics`` records give prequential metrics and the served metrics it judges per
version (``served_auc``, and over the last served examples only: ``recent_served_auc``,
``recent_ece``, the figures of the steady state); label-join's records give residuals of
the scores users actually got, with the mean score and mean label of each window: points
of a reliability plot (a calibrated model's windows lie on the diagonal). The monitor's
``calibration`` drift reports, when there are any, give the full reliability curve of
each arm: label rate per score bin.

Each model keeps one table over time, its columns the version and every metric seen,
bounded like every series of the dashboard; counts (``*_examples``) are shown as figures,
not charted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamlearn.dashboard.history import DEFAULT_MAX_POINTS, DEFAULT_WINDOW_S, Recent, Table
from streamlearn.dashboard.values import epoch_s, finite, finite_map

LEARNER = "learner"
LABEL_JOIN = "label-join"
MAX_MODELS = 50
MAX_ARMS = 200
RELIABILITY_POINTS = 300


def _charted(name: str) -> bool:
    return not name.endswith("_examples")


POOLED_WINDOWS = 8
"""Label-join windows kept open to more of their records (workers flush at one moment)."""


@dataclass
class LabelledWindow:
    """Label-join's records of one window pooled: each figure weighted by its examples
    (a root mean square through its square)."""

    examples: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def add(self, values: Mapping[str, float | None], count: float) -> None:
        self.examples += count
        for name, value in values.items():
            if value is None:
                continue
            squared = name.startswith("rmse")
            self.sums[name] = (
                self.sums.get(name, 0.0) + (value * value if squared else value) * count
            )
            self.weights[name] = self.weights.get(name, 0.0) + count

    def means(self) -> dict[str, float | None]:
        means: dict[str, float | None] = {}
        for name, total in self.sums.items():
            mean = total / self.weights[name]
            means[name] = mean**0.5 if name.startswith("rmse") else mean
        return means


@dataclass
class ModelHistory:
    """One model: its newest snapshot's metadata and its metrics over time."""

    name: str
    window_s: float = DEFAULT_WINDOW_S
    max_points: int = DEFAULT_MAX_POINTS
    version: int | None = None
    created_s: float | None = None
    trained_examples: int | None = None
    promoted_version: int | None = None
    """The newest version its promotion gate promoted: the one workers serve (a version
    the gate held back is published too, under ``<model>~newest``, and is the newest)."""
    versions_seen: int = 0
    latest: dict[str, float | None] = field(default_factory=dict)
    """Newest value of each metric, whichever record carried it."""
    sources: dict[str, str] = field(default_factory=dict)
    """Metric name → who computed it (snapshot, learner, label-join)."""
    table: Table = field(init=False)
    reliability: deque[tuple[float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=RELIABILITY_POINTS)
    )
    """(window end, mean score, mean label, examples) of label-join windows."""
    calibration: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Arm ("" without one) → the newest calibration report's reliability curve."""
    learner: dict[str, float] = field(default_factory=dict)
    """The learner's newest figures (its records carry no arm: one learner per model)."""
    _pools: dict[float, LabelledWindow] = field(default_factory=dict)
    """Label-join's windows by their end (the newest few), pooled over versions and arms."""

    def __post_init__(self) -> None:
        self.table = Table(("version",), window_s=self.window_s, max_points=self.max_points)

    def _row(self, t: float, metrics: Mapping[str, float | None], source: str) -> None:
        row: dict[str, float | None] = {}
        for name, value in metrics.items():
            if value is None:
                continue
            self.latest[name] = value
            self.sources.setdefault(name, source)
            if _charted(name):
                self.table.add_column(name)
                row[name] = value
        if row:
            self.table.add(t, row, merge=True)

    def snapshot(self, record: Mapping[str, Any]) -> None:
        version = int(record["version"])
        created = epoch_s(record.get("created_ts"))
        self.versions_seen += 1
        if self.version is None or version >= self.version:
            self.version = version
            self.created_s = created
            self.trained_examples = int(record.get("trained_examples") or 0)
        # `promoted` 0 is a version the gate held back; without the figure (no gate), or
        # 1, it serves (models/snapshot.py's is_promoted, without importing the models).
        promoted = (record.get("metrics") or {}).get("promoted", 1.0) != 0.0
        if promoted and (self.promoted_version is None or version >= self.promoted_version):
            self.promoted_version = version
        if created is not None:
            self.table.add(created, {"version": float(version)}, merge=True)
            self._row(created, finite_map(record.get("metrics")), "snapshot")

    def metrics(self, record: Mapping[str, Any]) -> None:
        t = epoch_s(record.get("window_end_ts"))
        if t is None:
            return
        source = str(record.get("source") or "")
        values = finite_map(record.get("metrics"))
        if source != LABEL_JOIN:
            self._row(t, values, source)
            if source == LEARNER:
                self.learner.update({k: v for k, v in values.items() if v is not None})
            return
        # One record per version (and arm) each window: the window's figure is of all of
        # them, weighted by examples. Positives reach the newest versions at once and
        # negatives the older ones a horizon later, so one version's record alone is a
        # biased sample (the last one read, the newest version's, mostly positives).
        count = finite(record.get("example_count")) or 0.0
        if count <= 0:
            return
        pool = self._pools.get(t)
        if pool is None:
            pool = self._pools[t] = LabelledWindow()
            while len(self._pools) > POOLED_WINDOWS:
                del self._pools[min(self._pools)]
        pool.add(values, count)
        pooled = pool.means()
        self._row(t, pooled, source)
        score, label = pooled.get("mean_score"), pooled.get("mean_label")
        if score is not None and label is not None:
            if self.reliability and self.reliability[-1][0] == t:
                self.reliability.pop()  # the same window, now with more of its records
            self.reliability.append((t, score, label, pool.examples))

    def calibrated(self, view: Mapping[str, Any]) -> None:
        """A ``calibration`` drift report (its view): score bins' mean score and label rate."""
        arm = str(view.get("arm") or "")
        known = self.calibration.get(arm)
        end = view.get("window_end_ts") or 0.0
        if known is not None and known["window_end_ts"] > end:
            return
        pairs = sorted(zip(view["reference"], view["current"], strict=False))
        self.calibration[arm] = {
            "arm": arm or None,
            "score": [p[0] for p in pairs],
            "label": [p[1] for p in pairs],
            "ece": view["statistics"].get("ece"),
            "window_end_ts": end,
        }

    def state(self) -> dict[str, Any]:
        points = sorted(self.reliability, key=lambda p: p[1])
        return {
            "name": self.name,
            "version": self.version,
            "created_ts": self.created_s,
            "trained_examples": self.trained_examples,
            "promoted_version": self.promoted_version,
            "versions_seen": self.versions_seen,
            "latest": dict(sorted(self.latest.items())),
            "sources": dict(sorted(self.sources.items())),
            "columns": self.table.since(None),
            "reliability": {
                "windows": {
                    "score": [p[1] for p in points],
                    "label": [p[2] for p in points],
                    "examples": [p[3] for p in points],
                },
                "curves": [c for _, c in sorted(self.calibration.items())],
            },
        }


@dataclass
class ArmStats:
    """One experiment arm of one model, as the metrics records describe it."""

    model: str
    arm: str
    version: int | None = None
    examples: float = 0.0
    label_sum: float = 0.0
    score_sum: float = 0.0
    learner: dict[str, float | None] = field(default_factory=dict)

    def add(self, record: Mapping[str, Any]) -> None:
        version = record.get("model_version")
        if isinstance(version, int) and (self.version is None or version > self.version):
            self.version = version
        values = finite_map(record.get("metrics"))
        if record.get("source") == LABEL_JOIN:
            count = finite(record.get("example_count")) or 0.0
            label, score = values.get("mean_label"), values.get("mean_score")
            if count > 0 and label is not None and score is not None:
                self.examples += count
                self.label_sum += label * count
                self.score_sum += score * count
        else:
            self.learner.update({k: v for k, v in values.items() if v is not None})

    def state(self, model_learner: Mapping[str, float] | None = None) -> dict[str, Any]:
        """``model_learner``: the figures of the arm's model's learner, shown when the
        arm has no learner of its own (the learner of a model learns all its arms)."""
        seen = self.examples > 0
        learner = self.learner or dict(model_learner or {})
        return {
            "model": self.model,
            "arm": self.arm,
            "version": self.version,
            "examples": self.examples,
            "label_rate": self.label_sum / self.examples if seen else None,
            "mean_score": self.score_sum / self.examples if seen else None,
            "metrics": dict(sorted(learner.items())),
        }


class ModelBoard:
    """Every model and arm seen on ``model.state`` and ``model.metrics``."""

    def __init__(
        self, *, window_s: float = DEFAULT_WINDOW_S, max_points: int = DEFAULT_MAX_POINTS
    ) -> None:
        self.window_s = window_s
        self.max_points = max_points
        self.models: Recent[str, ModelHistory] = Recent(MAX_MODELS)
        self.arms: Recent[tuple[str, str], ArmStats] = Recent(MAX_ARMS)

    def _model(self, name: str) -> ModelHistory:
        return self.models.get_or_create(
            name, lambda: ModelHistory(name, self.window_s, self.max_points)
        )

    def add_snapshot(self, record: Mapping[str, Any]) -> None:
        self._model(str(record["model_name"])).snapshot(record)

    def add_metrics(self, record: Mapping[str, Any]) -> None:
        name = str(record["model_name"])
        self._model(name).metrics(record)
        arm = record.get("arm")
        if arm:
            key = (name, str(arm))
            self.arms.get_or_create(key, lambda: ArmStats(name, str(arm))).add(record)

    def add_calibration(self, view: Mapping[str, Any]) -> None:
        """A ``calibration`` drift report's view (see :mod:`streamlearn.dashboard.drift`)."""
        if view.get("model"):
            self._model(str(view["model"])).calibrated(view)

    def models_state(self) -> list[dict[str, Any]]:
        return [m.state() for _, m in sorted(self.models.items())]

    def arms_state(self) -> list[dict[str, Any]]:
        states = []
        for _, arm in sorted(self.arms.items()):
            model = self.models.get(arm.model)
            states.append(arm.state(None if model is None else model.learner))
        return states
