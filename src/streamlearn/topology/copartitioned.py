"""The topics an agent reads together, which must keep as many partitions each.

A step's inputs are co-partitioned: a key's records of each input are in the same partition
number, and the step's state for that partition is sized by their common count; a worker
refuses to start a step whose inputs have unequal counts. `topics apply` therefore refuses
to leave an agent's inputs unequal: grown alone, ``telemetry.feedback`` stopped the running
label-join (its worker stops when a topic of its grows, runtime/partition_growth.py) and it
then refused to start, again at every restart. The agents' inputs are named here, not
imported from the agents (that costs River and SciPy); tests/unit/test_copartitioned.py
holds them to the steps' own ``inputs``.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import combinations

AGENT_INPUTS: dict[str, tuple[str, ...]] = {
    "preprocess": ("telemetry.events",),
    "sessionise": ("events.clean",),
    "label-join": ("telemetry.predictions", "telemetry.feedback"),
    "learner": ("training.examples",),
    "monitor": (
        "telemetry.events",
        "events.clean",
        "events.sessions",
        "telemetry.predictions",
        "training.examples",
    ),
}
"""Each agent's input topics (topology names), as its step declares them."""


def unequal_inputs(counts: Mapping[str, int], prefix: str = "") -> list[str]:
    """What is wrong when topics an agent reads together would have unequal partition
    counts; ``counts``: Kafka name (``prefix`` + topology name) → count it would have."""
    problems: list[str] = []
    pairs: dict[tuple[str, str], list[str]] = {}
    for agent, inputs in AGENT_INPUTS.items():
        for first, second in combinations(inputs, 2):
            pairs.setdefault((first, second), []).append(agent)
    for (first, second), agents in pairs.items():
        a, b = counts.get(prefix + first), counts.get(prefix + second)
        if a is None or b is None or a == b:
            continue
        grown, other = (first, second) if a > b else (second, first)
        reads, refuses = ("reads", "refuses") if len(agents) == 1 else ("read", "refuse")
        problems.append(
            f"{prefix}{grown} would have {max(a, b)} partitions and {prefix}{other} "
            f"{min(a, b)}: {' and '.join(agents)} {reads} them together (a key's records "
            f"in the same partition of each) and {refuses} to start on unequal counts; grow "
            "them together"
        )
    return problems
