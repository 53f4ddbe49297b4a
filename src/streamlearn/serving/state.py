"""What one prediction worker app holds (one per app, under the ``SERVING`` key)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streamlearn.serving.experiments import ExperimentBook
from streamlearn.serving.metrics import Latency, ServingMetrics
from streamlearn.serving.models import ModelStore, StateFollower
from streamlearn.serving.predictor import Predictor
from streamlearn.serving.telemetry import TelemetrySink
from streamlearn.settings import Settings


@dataclass
class Serving:
    settings: Settings
    store: ModelStore
    book: ExperimentBook
    metrics: ServingMetrics
    predictor: Predictor
    openapi: dict[str, Any]
    telemetry: TelemetrySink | None = None
    follower: StateFollower | None = None

    def latency(self, model: str) -> Latency:
        """The request-latency histogram of ``model``."""
        return self.metrics.request_seconds.labels(model)

    def caught_up(self) -> bool:
        """Whether the follower has read ``model.state`` to where it was at start (always
        true without a follower: models are then put in the store directly)."""
        return self.follower is None or self.follower.caught_up.is_set()


SERVING: web.AppKey[Serving] = web.AppKey("serving", Serving)
