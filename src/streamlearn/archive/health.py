"""The archive worker's probes, served by the agents' endpoint (``runtime/health.py``).

:class:`~streamlearn.runtime.health.WorkerHealth` judges liveness from a heartbeat and
readiness from a Faust app; the archive has no Faust app but the same questions, so this
adapter answers them from the consume loop: alive while the loop goes round (a poll, or a
file upload, stuck for ``stale_after_s`` is not), ready once the consumer has joined its
group, while no rebalance is being handled and while Kafka answers.
"""

from __future__ import annotations

from typing import Any

from streamlearn.archive.agent import ArchiveAgent
from streamlearn.runtime.broker_probe import BrokerProbe
from streamlearn.runtime.health import WorkerHealth

STALE_AFTER_S = 300.0
"""Longer than the agents' (30 s): completing a file may upload up to the file size
limit to object storage within one loop turn."""


class ArchiveHealth(WorkerHealth):
    def __init__(
        self,
        agent: ArchiveAgent,
        stale_after_s: float = STALE_AFTER_S,
        probe: BrokerProbe | None = None,
    ) -> None:
        # Not WorkerHealth.__init__: it takes a Faust app, which this worker does not have.
        self.agent = agent
        self.stale_after_s = stale_after_s
        self.probe = probe
        self.last_beat = None

    def install(self) -> None:
        """Nothing to install: the consume loop beats by itself."""

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        self.last_beat = self.agent.last_beat
        return super().liveness()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.agent.last_beat is None or not self.agent.started:
            return False, {"status": "starting"}
        if self.agent.rebalancing:
            return False, {"status": "rebalancing"}
        return self.reachable() or (
            True,
            {"status": "ready", "partitions": len(self.agent.archivers)},
        )
