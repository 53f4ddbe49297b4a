"""Prometheus metrics of the agents, in a registry owned by the worker (no globals).

One object for a worker's steps: each step counts what it does not forward, with why;
the runtime counts rejections and seeks. Pure steps' own counters (plain dataclasses of
ints) are exported with :meth:`AgentMetrics.expose`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from streamlearn.process_metrics import part_registry


class AgentMetrics:
    """Every event an agent does not forward is counted here, with why."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or part_registry()
        self.events = Counter(
            "streamlearn_preprocess_events",
            "Events read by preprocess, by outcome (clean, duplicate, bot; rejected ones are "
            "in streamlearn_rejected_records).",
            ["outcome"],
            registry=self.registry,
        )
        self.bots = Counter(
            "streamlearn_preprocess_bot_events",
            "Events dropped as a bot's, by the rule that fired.",
            ["rule"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "streamlearn_rejected_records",
            "Records routed to events.rejected, by agent and reason.",
            ["agent", "reason"],
            registry=self.registry,
        )
        self.unread = Counter(
            "streamlearn_unread_records",
            "Records an agent that publishes no rejections (the monitor) could not take, by "
            "agent and reason: the agent that reads the same topic and routes them counts "
            "them in streamlearn_rejected_records.",
            ["agent", "reason"],
            registry=self.registry,
        )
        self.sessions = Counter(
            "streamlearn_sessions_emitted",
            "Sessions emitted by sessionise, by kind (closed, correction).",
            ["kind"],
            registry=self.registry,
        )
        self.open_sessions = Gauge(
            "streamlearn_sessionise_open_sessions",
            "Sessions still open in the partitions this worker owns, as of its last sweep.",
            registry=self.registry,
        )
        self.late_events = Counter(
            "streamlearn_sessionise_late_events",
            "Events later than the allowed lateness, by what happened to them.",
            ["handling"],
            registry=self.registry,
        )

        self.snapshots = Counter(
            "streamlearn_learner_snapshots",
            "Snapshots published to model.state, by model.",
            ["model"],
            registry=self.registry,
        )
        self.rejected_snapshots = Counter(
            "streamlearn_learner_rejected_snapshots",
            "Snapshots on model.state that failed verification when the learner resumed.",
            ["model", "reason"],
            registry=self.registry,
        )
        self.resume_seeks = Counter(
            "streamlearn_resume_seeks",
            "Times an agent went back before its committed offset because its state said so "
            "(the learner: examples learned after its last snapshot, lost with the process).",
            ["agent"],
            registry=self.registry,
        )

    def keep_only(self, agents: Iterable[str]) -> None:
        """Export only the metrics of ``agents`` (and the ones every agent shares): a
        preprocess worker exported ``streamlearn_sessionise_open_sessions 0`` and the
        learner's families, misleading when each pod is scraped on its own."""
        own = {
            "preprocess": (self.events, self.bots),
            "sessionise": (self.sessions, self.open_sessions, self.late_events),
            "learner": (self.snapshots, self.rejected_snapshots),
        }
        running = set(agents)
        for agent, collectors in own.items():
            if agent not in running:
                for collector in collectors:
                    self.registry.unregister(collector)

    def expose(self, name: str, documentation: str, counters: Callable[[], Any]) -> None:
        """Export a dataclass of plain int counters (the pure steps' counters) as one
        Prometheus counter ``name`` with a ``what`` label, read at scrape time."""
        self.registry.register(_DataclassCounters(name, documentation, counters))

    def value(self, counter: Counter, **labels: str) -> float:
        """Current value of one labelled counter (for logs, progress and tests)."""
        return float(counter.labels(**labels)._value.get())


class _DataclassCounters(Collector):
    def __init__(self, name: str, documentation: str, counters: Callable[[], Any]) -> None:
        self.name, self.documentation, self.counters = name, documentation, counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.documentation, labels=["what"])
        for what, count in asdict(self.counters()).items():
            family.add_metric([what], count)
        yield family
