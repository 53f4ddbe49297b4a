"""The drain after a chaos run's traffic stops: long enough for every label horizon to
close and the learner to publish, then until each agent group has committed all its input
(:func:`caught_up`, which every `up --simulate` waits for too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from streamlearn.agents.monitor import MonitorStep
from streamlearn.models.configured import configured_specs
from streamlearn.replay.groups import committed_offsets
from streamlearn.runtime.topic_reader import end_offsets
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

INPUTS = {
    "preprocess": ("telemetry.events",),
    "sessionise": ("events.clean",),
    "label-join": ("telemetry.predictions", "telemetry.feedback"),
    "learner": ("training.examples",),
    "monitor": MonitorStep.inputs,
}
"""Every agent `up` runs, and its inputs (the invariants read the outputs of the first four;
the monitor's lag shows nowhere else)."""
LAG_TIMEOUT_S = 90.0
MARGIN_S = 5.0


def drain_seconds(settings: Settings) -> float:
    """Until the last prediction's horizon closed (its feedback clock moves on the wall
    clock once a partition is idle) and the learner's next snapshot is due."""
    specs = configured_specs(settings).values()
    horizon_s = max((spec.label.horizon_ms / 1000 for spec in specs), default=0.0)
    snapshot_s = max((spec.snapshot_every_s for spec in specs), default=0.0)
    return (
        horizon_s + settings.label_allowed_lateness_s + settings.session_idle_s
        + snapshot_s + MARGIN_S
    )  # fmt: skip


def lag(settings: Settings) -> dict[str, int]:
    """Agent → records of its inputs not yet committed by its group."""
    catalogue = TopicCatalogue.from_settings(settings)
    behind: dict[str, int] = {}
    for agent, topics in INPUTS.items():
        committed = committed_offsets(settings, catalogue.namespace.group(f"streamlearn-{agent}"))
        total = 0
        for logical in topics:
            name = catalogue.topic(logical).name
            for partition, (low, end) in end_offsets(settings, name).items():
                total += max(0, end - max(low, committed.get((name, partition), 0)))
        behind[agent] = total
    return behind


async def caught_up(settings: Settings) -> dict[str, int]:
    """Until no agent lags (or :data:`LAG_TIMEOUT_S`); the lag left."""
    deadline = time.monotonic() + LAG_TIMEOUT_S
    while True:
        behind = await asyncio.to_thread(lag, settings)
        if not any(behind.values()) or time.monotonic() > deadline:
            return behind
        await asyncio.sleep(1.0)


async def drain(settings: Settings, say: Callable[[str], None]) -> dict[str, int]:
    """Until the agents caught up with the traffic (after a fault they may be far behind),
    then :func:`drain_seconds` for the horizons the last records opened, then until they
    caught up with what that closed; the lag left (all zero when caught up)."""
    seconds = drain_seconds(settings)
    say("chaos: traffic stopped; waiting for every agent to catch up")
    await caught_up(settings)
    say(f"chaos: draining {seconds:.0f}s (label horizons, the last snapshot)")
    await asyncio.sleep(seconds)
    behind = await caught_up(settings)
    say("chaos: agents caught up" if not any(behind.values()) else f"chaos: still behind {behind}")
    return behind
