"""A synthetic world with a known click model, for contract checks, tests and benchmarks.

Each request has served features of every kind the schema allows (floats, ints, booleans,
strings, and nulls for missing values) and a request context. The true click probability
is a logistic function of them, with one effect (hour of day) that is not linear in the
raw feature, so a linear model cannot reach the true model's AUC: the true probabilities'
AUC is the ceiling any learner is measured against. A clicked request converts with some
probability, with a value (revenue) that depends on the category, for the regressor.

Everything is drawn from one seeded ``numpy`` generator: the same seed gives the same world.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from streamlearn.models.inputs import FeatureValue

CATEGORIES = {"books": 0.4, "games": 0.9, "food": -0.6, "toys": 0.0, "garden": -1.0}
PLACEMENTS = {"top": 1.0, "side": -0.4, "bottom": -1.2}
DEVICES = ("mobile", "desktop", "tablet")
VALUE_MEANS = {"books": 20.0, "games": 45.0, "food": 12.0, "toys": 30.0, "garden": 60.0}


@dataclass(frozen=True)
class Request:
    """One served request with its true outcome."""

    features: dict[str, FeatureValue]
    context: dict[str, str]
    p_click: float
    clicked: bool
    converted: bool
    value: float


class ClickWorld:
    """Draws requests from a fixed logistic click model (see module documentation)."""

    def __init__(self, seed: int = 0, base_logit: float = -1.2) -> None:
        self.rng = np.random.default_rng(seed)
        self.base_logit = base_logit

    def _logit(
        self,
        price: float,
        hour: int,
        is_mobile: bool,
        category: str,
        recency_s: float | None,
        loyalty: str,
        placement: str,
    ) -> float:
        z = self.base_logit - 0.7 * math.log(price / 20.0)
        z += 0.9 if is_mobile else 0.0
        z += CATEGORIES[category]
        z += PLACEMENTS[placement]
        z += 0.8 * math.sin(2 * math.pi * hour / 24.0)
        if recency_s is not None:
            z -= 0.4 * math.log1p(recency_s / 600.0)
        if loyalty == "gold":
            z += 0.7
        return z

    def request(self) -> Request:
        rng = self.rng
        category = str(rng.choice(list(CATEGORIES)))
        price = float(np.exp(rng.normal(3.0, 0.8)))
        hour = int(rng.integers(0, 24))
        is_mobile = bool(rng.random() < 0.55)
        # Missing for a third of users: new users have no history.
        recency_s = float(rng.exponential(900.0)) if rng.random() < 0.67 else None
        loyalty = str(rng.choice(["none", "silver", "gold"], p=[0.6, 0.3, 0.1]))
        placement = str(rng.choice(list(PLACEMENTS)))
        features: dict[str, FeatureValue] = {
            "price": price,
            "hour": hour,
            "is_mobile": is_mobile,
            "category": category,
            "recency_s": recency_s,
            "loyalty": loyalty,
        }
        context = {"placement": placement, "device": str(rng.choice(DEVICES))}
        logit = self._logit(price, hour, is_mobile, category, recency_s, loyalty, placement)
        p_click = 1.0 / (1.0 + math.exp(-logit))
        clicked = bool(rng.random() < p_click)
        converted = clicked and bool(rng.random() < 0.3)
        value = float(rng.gamma(2.0, VALUE_MEANS[category] / 2.0)) if converted else 0.0
        return Request(features, context, p_click, clicked, converted, value)

    def requests(self, n: int) -> list[Request]:
        return [self.request() for _ in range(n)]

    def training_examples(
        self, count: int, *, model_name: str = "ctr", first: int = 0, at: datetime | None = None
    ) -> list[dict[str, Any]]:
        """``count`` ``TrainingExample`` records of ``model_name`` labelled with the world's
        clicks (request ids ``req-<first>``...), for the learner's tests and benchmarks."""
        now = at or datetime.now(UTC)
        return [
            {
                "request_id": f"req-{n}",
                "model_name": model_name,
                "model_version": 0,
                "arm": None,
                "user_id": f"u-{n % 97}",
                "features": {**r.features, **{f"ctx.{k}": v for k, v in r.context.items()}},
                "label": float(r.clicked),
                "label_definition": "click_within_30m",
                "score": 0.5,
                "served_ts": now,
                "impression_ts": now,
                "outcome_ts": now if r.clicked else None,
                "labelled_ts": now + timedelta(seconds=1),
                "weight": 1.0,
            }
            for n, r in enumerate(self.requests(count), start=first)
        ]

    def telemetry(
        self,
        n: int,
        start: datetime,
        *,
        model_name: str = "ctr",
        model_version: int = 0,
        every_ms: int = 100,
        seen_fraction: float = 0.9,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[Request]]:
        """``n`` served predictions, their feedback, and the requests behind them.

        Returns ``PredictionServed`` records (score 0.5, as from a fallback), ``Feedback``
        records (an impression for the ``seen_fraction`` that were shown, a click a few
        seconds later for the clicked ones among them, a conversion with its value for the
        converted ones), both in time order, and the requests with their true outcomes.
        """
        predictions: list[dict[str, Any]] = []
        feedback: list[dict[str, Any]] = []
        requests: list[Request] = []
        for i in range(n):
            request = self.request()
            served = start + timedelta(milliseconds=i * every_ms)
            request_id = f"req-{uuid.UUID(int=int(self.rng.integers(0, 2**63)))}"
            user_id = f"u-{int(self.rng.integers(0, 1000))}"
            predictions.append(
                {
                    "request_id": request_id,
                    "user_id": user_id,
                    "model_name": model_name,
                    "model_version": model_version,
                    "experiment": None,
                    "arm": None,
                    "features": request.features,
                    "context": request.context,
                    "score": 0.5,
                    "decision": None,
                    "degraded": model_version == 0,
                    "degraded_reason": "no model" if model_version == 0 else None,
                    "served_ts": served,
                    "worker_version": "synthetic",
                    "latency_ms": 1.0,
                }
            )
            seen = bool(self.rng.random() < seen_fraction)
            if seen:
                moments: list[tuple[str, int, float | None]] = [("impression", 200, None)]
                if request.clicked:
                    moments.append(("click", int(self.rng.integers(1_000, 30_000)), None))
                if request.converted:
                    moments.append(("conversion", 60_000, request.value))
                for kind, after_ms, value in moments:
                    at = served + timedelta(milliseconds=after_ms)
                    feedback.append(
                        {
                            "request_id": request_id,
                            "event_id": str(uuid.UUID(int=int(self.rng.integers(0, 2**63)))),
                            "kind": kind,
                            "value": value,
                            "user_id": user_id,
                            "client_ts": at,
                            "received_ts": at + timedelta(milliseconds=50),
                            "app_version": "synthetic",
                            "properties": {},
                            "user_agent": None,
                        }
                    )
            requests.append(request)
        feedback.sort(key=lambda record: record["received_ts"])
        return predictions, feedback, requests


def exact_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The exact ROC AUC (ties count one half), for reporting the ceiling (labels and
    scores as lists or arrays)."""
    y = np.asarray(labels, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=float)
    sorted_scores = s[order]
    # Average ranks of ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))
