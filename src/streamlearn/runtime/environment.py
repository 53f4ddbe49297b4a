"""What a step's factory may use, from whichever runtime runs it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

TopicReader = Callable[[str], Iterable[tuple[bytes | None, bytes | None]]]
"""``read(topic)``: (key, value) of every record of a topology topic, from its start to its
end now (e.g. the learner's snapshots on ``model.state``)."""


@dataclass(frozen=True)
class StepEnvironment:
    settings: Settings
    metrics: AgentMetrics
    catalogue: TopicCatalogue
    registry: SchemaSource
    read_topic: TopicReader
