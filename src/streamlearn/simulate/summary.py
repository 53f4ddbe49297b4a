"""The simulator's counters, printed at the end (``--json`` for scripts)."""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from streamlearn.models.synthetic import exact_auc

LATENCY_WINDOW = 10_000
TRUTH_WINDOW = 100_000
"""Impressions the AUC ceiling is computed over (the newest): a long run's memory stays
flat (about 17 minutes at the default rate)."""


@dataclass
class Summary:
    """What the simulator generated, sent, and what the services answered.

    ``events_per_s`` is events the collector accepted per second of the run (duplicates
    included; feedback not). ``sent`` counts items posted (not those ``dropped`` before).

    ``generated`` counts hits by kind (``page_view``, ``duplicate``, ``malformed``) and
    ``actors`` page views by who made them (``human``, ``crawler``, ``burst_bot``); ``late``
    counts events whose ``client_ts`` lies 20 s to 15 min in the past. ``accepted`` is what the
    collector confirmed (202), by record kind: ``event`` (``telemetry.events``) and feedback
    kinds (``telemetry.feedback``). ``refused`` counts answers by HTTP status;
    ``malformed_refused`` the malformed items answered 400 (should equal ``generated
    ["malformed"]``). ``truth_auc_ceiling`` is the AUC of the true probabilities over the
    impressions sent (the last :data:`TRUTH_WINDOW` of them): no model can rank those
    clicks better.

    ``arms`` counts impressions and clicks by the experiment arm that served the slot (``-``
    when no experiment covers the model), so ``ctr_by_arm`` compares arms. ``predict_ms``
    is the latency of predict calls as this client saw it (p50/p99 of the last 10,000).
    """

    seed: int = 0
    rate_target: float = 0.0
    elapsed_s: float = 0.0
    generated: dict[str, int] = field(default_factory=dict)
    actors: dict[str, int] = field(default_factory=dict)
    late: int = 0
    sent: dict[str, int] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    malformed_refused: int = 0
    dropped: int = 0
    collector_errors: int = 0
    predict_requests: int = 0
    predictions: int = 0
    degraded: dict[str, int] = field(default_factory=dict)
    predict_errors: int = 0
    slots_skipped: int = 0
    served_not_seen: int = 0
    impressions: int = 0
    clicks: int = 0
    conversions: int = 0
    feedback_pending_at_stop: int = 0
    arms: dict[str, dict[str, int]] = field(default_factory=dict)
    drift_at_s: float | None = None
    truth_auc_ceiling: float | None = None
    truth_auc_ceiling_after_drift: float | None = None
    _truth: deque[tuple[float, bool, bool]] = field(
        default_factory=lambda: deque(maxlen=TRUTH_WINDOW), repr=False
    )
    _predict_s: deque[float] = field(
        default_factory=lambda: deque(maxlen=LATENCY_WINDOW), repr=False
    )

    def count(self, counter: dict[str, int], key: str, n: int = 1) -> None:
        counter[key] = counter.get(key, 0) + n

    def record_impression(
        self, p_click: float, clicked: bool, drifted: bool, arm: str | None = None
    ) -> None:
        self.impressions += 1
        self._truth.append((p_click, clicked, drifted))
        counts = self.arms.setdefault(arm or "-", {"impressions": 0, "clicks": 0})
        counts["impressions"] += 1
        counts["clicks"] += clicked

    def record_predict_latency(self, seconds: float) -> None:
        self._predict_s.append(seconds)

    @property
    def ctr_by_arm(self) -> dict[str, float]:
        return {
            arm: round(c["clicks"] / c["impressions"], 4)
            for arm, c in sorted(self.arms.items())
            if c["impressions"]
        }

    @property
    def predict_ms(self) -> dict[str, float] | None:
        if not self._predict_s:
            return None
        p50, p99 = np.percentile(np.fromiter(self._predict_s, float), [50, 99])
        return {"p50": round(float(p50) * 1000, 2), "p99": round(float(p99) * 1000, 2)}

    def truth_auc_so_far(self) -> float | None:
        """The ceiling over the impressions recorded until now (for live views)."""
        return _auc([t for t in self._truth if not t[2]])

    @property
    def events_per_s(self) -> float:
        accepted = self.accepted.get("event", 0)
        return accepted / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def finish(self) -> Summary:
        """Compute the AUC ceilings from the impressions recorded."""
        self.truth_auc_ceiling = _auc([t for t in self._truth if not t[2]])
        if self.drift_at_s is not None:
            self.truth_auc_ceiling_after_drift = _auc([t for t in self._truth if t[2]])
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["_truth"], data["_predict_s"]
        data["ctr_by_arm"] = self.ctr_by_arm
        data["predict_ms"] = self.predict_ms
        data["events_per_s"] = round(self.events_per_s, 1)
        data["elapsed_s"] = round(self.elapsed_s, 2)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def unreached(self, collector_url: str, predict_url: str) -> list[str]:
        """What never got through, said plainly: a run against servers that are not
        there, or that want a write key or a token, is otherwise only counts."""
        problems = []
        if not self.accepted and (self.collector_errors or self.refused):
            refused = ", ".join(f"{n} with {status}" for status, n in sorted(self.refused.items()))
            problems.append(
                f"the collector at {collector_url} accepted nothing: "
                f"{self.collector_errors} request(s) got no answer"
                + (f"; refused {refused}" if refused else "")
                + (" (401: the write key comes from STREAMLEARN_COLLECTOR_WRITE_KEYS)"
                   if "401" in self.refused else "")
            )  # fmt: skip
        if not self.predictions and self.predict_errors:
            problems.append(
                f"the prediction worker at {predict_url} answered none of "
                f"{self.predict_requests} request(s) (not reachable, or no 200: a token the "
                "API wants comes from STREAMLEARN_SERVE_API_TOKENS)"
            )
        return problems

    def describe(self) -> str:
        return "\n".join(f"{key}: {value}" for key, value in sorted(self.to_dict().items()))


def _auc(rows: list[tuple[float, bool, bool]]) -> float | None:
    auc = exact_auc([r[1] for r in rows], [r[0] for r in rows]) if rows else math.nan
    return None if math.isnan(auc) else round(auc, 4)
