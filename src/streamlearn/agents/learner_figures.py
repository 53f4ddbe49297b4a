"""What the learner tells operators besides its snapshots: the served figures over the
last window as gauges, versions its promotion gate held back (a counter by reason, and
an ``Alert`` on ``monitoring.alerts`` when a version was judged worse than the one serving)
and snapshots too large for ``model.state`` (a counter, and a critical ``Alert``).

Gauges are set when a snapshot is published (every ``snapshot_every_s``), from the
figures the snapshot carries, so a scrape costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamlearn.models.exceptions import SnapshotTooLarge
from streamlearn.models.promotion import auc_passes, log_loss_passes

AGENT = "learner"
HELD_BACK_KIND = "version_held_back"
TOO_LARGE_KIND = "snapshot_too_large"

_GAUGES = {
    "recent_served_auc": (
        "streamlearn_learner_recent_served_auc",
        "Served AUC (per serving version, exact) over the model's last served examples.",
    ),
    "recent_ece": (
        "streamlearn_learner_recent_ece",
        "Expected calibration error of the scores served over the model's last examples.",
    ),
    "served_auc": (
        "streamlearn_learner_served_auc",
        "Served AUC since the learner started or resumed (its last versions).",
    ),
    # The figures of the version workers serve are of when it was published: with a gate,
    # possibly long ago (`up` judged a model by a version promoted at its start).
    "auc": (
        "streamlearn_learner_auc",
        "Prequential AUC (each example scored before it is learned) at the newest version.",
    ),
}


class LearnerFigures:
    """The learner's gauges, held-back and cold-start counters, in its worker's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauges = {
            key: Gauge(name, doc, ["model"], registry=registry)
            for key, (name, doc) in _GAUGES.items()
        }
        self.held_back = Counter(
            "streamlearn_learner_versions_held_back",
            "Versions published but not promoted by the model's gate, by reason "
            "(judged_worse: its held-out log loss was over the promoted one's plus the "
            "margin; short_window: not yet a full window of examples since the promotion).",
            ["model", "reason"],
            registry=registry,
        )

        self.unpublished = Counter(
            "streamlearn_learner_unpublished_snapshots",
            "Snapshots the learner made but could not publish, by reason (too_large: over "
            "model.state's message limit; the model keeps learning and is tried again at "
            "its next cadence).",
            ["model", "reason"],
            registry=registry,
        )

        self.cold_starts = Counter(
            "streamlearn_learner_cold_starts",
            "Models that started cold although their spec names a warm-start baseline, by "
            "reason (no_baseline: no verified snapshot of it on model.state; "
            "baseline_rejected: it is another spec's).",
            ["model", "reason"],
            registry=registry,
        )

    def published(
        self, snapshot: Mapping[str, Any], metrics: Mapping[str, float]
    ) -> dict[str, Any] | None:
        """Record a published snapshot's figures; the alert to raise, if it was judged
        worse than the promoted version."""
        name = str(snapshot["model_name"])
        for key, gauge in self.gauges.items():
            if key in metrics:
                gauge.labels(model=name).set(metrics[key])
        decided = snapshot["metrics"]
        if decided.get("promoted", 1.0) != 0.0:
            return None
        judged = "gate_log_loss" in decided
        self.held_back.labels(model=name, reason="judged_worse" if judged else "short_window").inc()
        return held_back_alert(snapshot) if judged else None


def held_back_alert(snapshot: Mapping[str, Any]) -> dict[str, Any]:
    """The ``Alert`` of a version the gate judged worse: what failed, over the same
    examples as the promoted version: its held-out log loss (against the promoted one's
    plus the margin), its held-out AUC (against the promoted one's less the AUC margin,
    when the gate judges ranking too), or both. ``value`` and ``threshold`` are the log
    loss's when it failed, else the AUC's."""
    name, version = str(snapshot["model_name"]), int(snapshot["version"])
    decided = snapshot["metrics"]
    examples = int(decided.get("gate_examples", 0))
    loss, promoted = decided["gate_log_loss"], decided["gate_promoted_log_loss"]
    margin = decided.get("gate_margin", 0.0)
    failed: list[tuple[str, float, float]] = []
    if not log_loss_passes(loss, promoted, margin):
        failed.append((
            f"held-out log loss {loss:.4f} against {promoted:.4f} for the promoted version "
            f"(allowed: {margin:g} more)", loss, promoted + margin,
        ))  # fmt: skip
    if "gate_auc" in decided:
        auc, promoted_auc = decided["gate_auc"], decided["gate_promoted_auc"]
        auc_margin = decided.get("gate_auc_margin", 0.0)
        if not auc_passes(auc, promoted_auc, auc_margin):
            failed.append((
                f"held-out AUC {auc:.4f} against {promoted_auc:.4f} for the promoted version "
                f"(allowed: {auc_margin:g} less)", auc, promoted_auc - auc_margin,
            ))  # fmt: skip
    if not failed:
        # Held back with figures that pass both tests (not a decision of the gate's rules,
        # the functions above): the alert still names the figures.
        reason = f"held-out log loss {loss:.4f} against {promoted:.4f}"
        failed.append((reason, loss, promoted + margin))
    created = snapshot["created_ts"]
    return {
        "alert_key": f"{HELD_BACK_KIND}/{name}",
        "kind": HELD_BACK_KIND,
        "severity": "warning",
        "message": (
            f"{name} v{version} published, not promoted: "
            f"{' and '.join(reason for reason, _, _ in failed)} over the last {examples} "
            "examples; workers keep serving the promoted version"
        ),
        "model_name": name,
        "model_version": version,
        "value": failed[0][1],
        "threshold": failed[0][2],
        "labels": {"examples": str(examples)},
        "source": AGENT,
        "raised_ts": created if isinstance(created, int) else int(created.timestamp() * 1000),
    }


def too_large_alert(exc: SnapshotTooLarge, version: int, created: datetime) -> dict[str, Any]:
    """The ``Alert`` of a model whose snapshots no longer fit ``model.state``."""
    return {
        "alert_key": f"{TOO_LARGE_KIND}/{exc.model_name}",
        "kind": TOO_LARGE_KIND,
        "severity": "critical",
        "message": (
            f"{exc}; not published: workers keep serving v{version} or older while the model "
            "learns on (a model grows with every feature name and category it learns: see "
            "docs/agents.md)"
        ),
        "model_name": exc.model_name,
        "model_version": version or None,
        "value": float(exc.size),
        "threshold": float(exc.limit),
        "labels": {},
        "source": AGENT,
        "raised_ts": int(created.timestamp() * 1000),
    }
