"""What one prediction worker app holds (one per app, under the ``SERVING`` key)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from streamlearn.serving.experiments import ExperimentBook
from streamlearn.serving.follower import StateFollower
from streamlearn.serving.metrics import Latency, ServingMetrics
from streamlearn.serving.models import ModelStore
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
    _latencies: dict[str, Latency] = field(default_factory=dict, init=False, repr=False)
    """The histogram of each model asked for (only known models' requests are timed)."""

    def latency(self, model: str) -> Latency:
        """The request-latency histogram of ``model`` (its child looked up once: a
        label lookup takes a lock and builds a key at every call)."""
        latency = self._latencies.get(model)
        if latency is None:
            latency = self._latencies[model] = self.metrics.request_seconds.labels(model)
        return latency

    def caught_up(self) -> bool:
        """Whether the follower has read ``model.state`` to where it was at start (always
        true without a follower: models are then put in the store directly)."""
        return self.follower is None or self.follower.caught_up.is_set()


SERVING: web.AppKey[Serving] = web.AppKey("serving", Serving)
