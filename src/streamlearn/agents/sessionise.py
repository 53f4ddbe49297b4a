"""The sessionise agent: ``events.clean`` → ``events.sessions``.

Inactivity-gap sessions per user on event time, with allowed lateness: the rules are
:mod:`streamlearn.agents.sessions` (a :class:`~streamlearn.agents.sessions.Sessioniser`
per partition, over the partition's ``sessions`` and ``clock`` stores); this module runs
them as an agent, counts what they count in the agent's metrics and lets a quiet live
partition's timer close sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from streamlearn.agents.sessions import Sessioniser, SessionRules
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import FETCH_HOLD_MS, Emit, Record, Send, Step
from streamlearn.settings import Settings

AGENT = "sessionise"


class SessioniseStep(Step):
    """The agent (see the module docstring)."""

    name = AGENT
    inputs = ("events.clean",)
    outputs = ("events.sessions",)
    stores = ("sessions", "clock")
    tick_every_s = 1.0
    plain_inputs = True  # event times as epoch ms, event ids as strings: what it computes with
    fetch_hold_ms = FETCH_HOLD_MS
    decodes_in_second_process = True  # its decoding is a third of its work: on a second core
    # All it reads of a CleanEvent: the rest (two maps, a dozen strings) is read past.
    input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "events.clean": ("event_id", "user_id", "event_ts", "url", "device_class")
    }

    def __init__(self, settings: Settings, metrics: AgentMetrics) -> None:
        self.rules = SessionRules.from_settings(settings)
        self.metrics = metrics
        self._partitions: dict[int, Sessioniser] = {}

    def _count(self, family: str, kind: str) -> None:
        if family == "sessions":
            self.metrics.sessions.labels(kind=kind).inc()
        else:
            self.metrics.late_events.labels(handling=kind).inc()

    def scheduled(self, partition: int) -> int:
        """Close and forget times waiting in ``partition`` (bounded by the windows)."""
        return self._partitions[partition].scheduled()

    # -- partitions ----------------------------------------------------------------------

    def opened(self, partition: int) -> None:
        self._partitions[partition] = Sessioniser(
            self.rules,
            self.state.of("sessions", partition),
            self.state.of("clock", partition),
            wall_clock=self.wall_clock,
            count=self._count,
        )

    def closing(self, partition: int, emit: Emit) -> None:
        self._partitions.pop(partition, None)

    # -- records and time ----------------------------------------------------------------

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        sessioniser = self._partitions[partition]
        send = emit.to("events.sessions")
        for record in records:
            _send_all(send, sessioniser.take(record.value))

    def tick(self, partition: int, now_ms: int, read_ms: int | None, emit: Emit) -> None:
        sessioniser = self._partitions[partition]
        _send_all(
            send=emit.to("events.sessions"), sessions=sessioniser.advance_live(now_ms, read_ms)
        )
        self.metrics.open_sessions.set(
            sum(len(state["open"]) for p in self.state.partitions()
                for state in self.state.of("sessions", p).values())
        )  # fmt: skip


def _send_all(send: Send, sessions: list[dict[str, object]]) -> None:
    for session in sessions:
        send(str(session["user_id"]), session)
