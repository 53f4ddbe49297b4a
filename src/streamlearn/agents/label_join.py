"""The label-join agent: ``telemetry.predictions`` + ``telemetry.feedback`` →
``training.examples`` (and residuals to ``model.metrics``).

A :class:`~streamlearn.agents.labels.LabelJoiner` per partition over the partition's stores
(``requests``: request id → join entry; ``clock``: the two inputs' event times), and the
residuals (label - served score) of what it emits, flushed to ``model.metrics`` every 10 s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from streamlearn.agents.labels import Example, JoinCounters, LabelJoiner
from streamlearn.agents.residuals import ResidualAggregator
from streamlearn.models.specs import ModelSpec
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import FETCH_HOLD_MS, Emit, Record, Step
from streamlearn.settings import Settings

AGENT = "label-join"
RESIDUALS_EVERY_MS = 10_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class LabelJoinStep(Step):
    """The agent: a :class:`LabelJoiner` per partition, residuals of what it emits."""

    name = AGENT
    inputs = ("telemetry.predictions", "telemetry.feedback")
    outputs = ("training.examples", "model.metrics")
    stores = ("requests", "clock")
    tick_every_s = 1.0
    # Timestamps as the epoch ms they are on the wire, event ids as strings: the joiner
    # computes in ms, and examples carry ms (a datetime per timestamp, decoded and
    # encoded back, was ~7 % of the learning lab's CPU).
    plain_inputs = True
    fetch_hold_ms = FETCH_HOLD_MS
    # What the joiner reads of each input; the rest is read past, not built.
    input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "telemetry.predictions": (
            "request_id", "user_id", "model_name", "model_version", "arm", "features",
            "context", "score", "served_ts",
        ),
        "telemetry.feedback": (
            "request_id", "event_id", "kind", "value", "client_ts", "received_ts",
            "user_agent",
        ),
    }  # fmt: skip

    def __init__(
        self, settings: Settings, metrics: AgentMetrics, specs: Mapping[str, ModelSpec]
    ) -> None:
        self.labels = {name: spec.label for name, spec in specs.items()}
        self.lateness_s = settings.label_allowed_lateness_s
        self.retention_s = settings.dedup_window_s
        self.idle_ms = int(settings.session_idle_s * 1000)
        self.counters = JoinCounters()
        metrics.expose(
            "streamlearn_label_join_records",
            "Predictions and feedback read by label-join, by what became of them.",
            lambda: self.counters,
        )
        self._joiners: dict[int, LabelJoiner] = {}
        self._residuals: ResidualAggregator | None = None
        self._residuals_flushed_ms = 0

    def opened(self, partition: int) -> None:
        self._joiners[partition] = LabelJoiner(
            self.labels,
            self.state.of("requests", partition),
            self.state.of("clock", partition),
            counters=self.counters,
            allowed_lateness_s=self.lateness_s,
            retention_s=self.retention_s,
            idle_ms=self.idle_ms,
        )

    def closing(self, partition: int, emit: Emit) -> None:
        self._joiners.pop(partition, None)

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        joiner = self._joiners[partition]
        send = emit.to("training.examples")
        # With the broker's time of each (LogAppendTime in the topology): a prediction or
        # a feedback stamped far after it is placed at it (LabelJoiner).
        if records[0].topic == "telemetry.predictions":
            for record in records:
                self._emit(joiner.on_prediction(record.value, record.timestamp_ms), send)
        else:
            for record in records:
                self._emit(joiner.on_feedback(record.value, record.timestamp_ms), send)

    def tick(self, partition: int, now_ms: int, read_ms: int | None, emit: Emit) -> None:
        joiner = self._joiners[partition]
        self._emit(joiner.advance_live(now_ms, read_ms), emit.to("training.examples"))
        if now_ms - self._residuals_flushed_ms >= RESIDUALS_EVERY_MS:
            self._residuals_flushed_ms = now_ms
            send_metrics = emit.to("model.metrics")
            for record in self.residuals().flush(_at(now_ms)):
                send_metrics(record["model_name"], record)

    def residuals(self) -> ResidualAggregator:
        """Residuals of the examples emitted since the last flush (in memory: a crash loses
        at most one window of them, never an example)."""
        if self._residuals is None:
            self._residuals = ResidualAggregator(_at(self.wall_clock()))
        return self._residuals

    def _emit(self, examples: list[Example], send: Any) -> None:
        for example in examples:
            send(example["model_name"], example)
            self.residuals().add(example)
