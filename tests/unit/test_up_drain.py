"""Which agents `up`'s check "every agent read its input to the end" covers."""

from __future__ import annotations

from streamlearn.agents import AGENT_NAMES
from streamlearn.agents.monitor import MonitorStep
from streamlearn.up.drain import INPUTS


def test_every_agent_up_runs_is_checked_for_its_whole_input() -> None:
    """The monitor was left out: a probe's run passed the check while the monitor had read
    nothing for 14 minutes."""
    assert set(INPUTS) == set(AGENT_NAMES)
    assert INPUTS["monitor"] == MonitorStep.inputs
