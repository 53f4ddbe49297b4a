"""``streamlearn simulate``: seeded traffic with a known ground truth, through the real APIs.

- :mod:`~streamlearn.simulate.truth`: the true click model (``ClickWorld``'s) with optional drift;
- :mod:`~streamlearn.simulate.world`: users, bots, devices, user agents;
- :mod:`~streamlearn.simulate.traffic`: the deterministic stream of what happens, in time order;
- :mod:`~streamlearn.simulate.traffic_types`: its configuration, hits, slots and seeded ids;
- :mod:`~streamlearn.simulate.loop`: the asyncio driver (collector and prediction worker);
- :mod:`~streamlearn.simulate.summary`: the counters printed at the end.
"""

from streamlearn.simulate.loop import (
    LoopOptions,
    Simulator,
    new_simulator,
    run_simulation,
    run_simulator,
)
from streamlearn.simulate.summary import Summary
from streamlearn.simulate.traffic import Traffic, TrafficConfig
from streamlearn.simulate.truth import Truth

__all__ = [
    "LoopOptions",
    "Simulator",
    "Summary",
    "Traffic",
    "TrafficConfig",
    "Truth",
    "new_simulator",
    "run_simulation",
    "run_simulator",
]
