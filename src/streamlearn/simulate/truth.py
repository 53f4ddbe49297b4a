"""The simulator's ground truth: :class:`~streamlearn.models.synthetic.ClickWorld`'s click model.

The true click probability of a shown recommendation is ClickWorld's logistic model of its
features (price, hour, is_mobile, category, recency_s, loyalty) and placement. With concept
drift, from ``drift_at_s`` on two effects change sign: mobile users click *less* (-0.9 instead
of +0.9) and every category's effect is negated (games become unpopular, garden popular).
A model trained before the drift then ranks those requests the wrong way round.
:class:`~streamlearn.simulate.traffic.Traffic` takes ``drift_at_s`` from its config's
``drift_at_s`` or its ``concept_drift`` change (:mod:`~streamlearn.simulate.changes`);
``Truth()`` (no drift) is the world as a model trained before any change knew it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from streamlearn.models.inputs import FeatureValue
from streamlearn.models.synthetic import CATEGORIES, ClickWorld

MOBILE_EFFECT = 0.9


class Truth:
    """``p_click(features, context, at_s)``: the true probability at simulated time ``at_s``."""

    def __init__(self, drift_at_s: float | None = None) -> None:
        self.drift_at_s = drift_at_s
        self._world = ClickWorld(0)

    def drifted(self, at_s: float) -> bool:
        return self.drift_at_s is not None and at_s >= self.drift_at_s

    def logit(
        self, features: Mapping[str, FeatureValue], context: Mapping[str, str], at_s: float
    ) -> float:
        category = str(features["category"])
        is_mobile = bool(features["is_mobile"])
        recency = features.get("recency_s")
        z = self._world._logit(
            float(features["price"]),  # type: ignore[arg-type]
            int(features["hour"]),  # type: ignore[arg-type]
            is_mobile,
            category,
            float(recency) if isinstance(recency, int | float) else None,
            str(features["loyalty"]),
            context["placement"],
        )
        if self.drifted(at_s):
            # Flip the two effects: subtract twice what ClickWorld added.
            z -= 2 * (MOBILE_EFFECT if is_mobile else 0.0) + 2 * CATEGORIES[category]
        return z

    def p_click(
        self, features: Mapping[str, FeatureValue], context: Mapping[str, str], at_s: float
    ) -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(features, context, at_s)))
