"""Prometheus metrics of the agents, in a registry owned by the worker (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class AgentMetrics:
    """Every event an agent does not forward is counted here, with why."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.events = Counter(
            "streamlearn_preprocess_events",
            "Events read by preprocess, by outcome (clean, duplicate, bot, rejected).",
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
        self.sessions = Counter(
            "streamlearn_sessions_emitted",
            "Sessions emitted by sessionise, by kind (closed, correction).",
            ["kind"],
            registry=self.registry,
        )
        self.late_events = Counter(
            "streamlearn_sessionise_late_events",
            "Events later than the allowed lateness, by what happened to them.",
            ["handling"],
            registry=self.registry,
        )

    def value(self, counter: Counter, **labels: str) -> float:
        """Current value of one labelled counter (for logs, progress and tests)."""
        return float(counter.labels(**labels)._value.get())
