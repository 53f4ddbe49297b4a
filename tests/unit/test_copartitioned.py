"""The agents' inputs that `topics apply` keeps at equal partition counts
(topology/copartitioned.py; the real broker's case is in
tests/integration/test_partition_growth.py)."""

from __future__ import annotations

from streamlearn.agents.label_join import LabelJoinStep
from streamlearn.agents.learner import LearnerStep
from streamlearn.agents.monitor import MonitorStep
from streamlearn.agents.preprocess import PreprocessStep
from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.topology.copartitioned import AGENT_INPUTS, unequal_inputs
from streamlearn.topology.plan import DesiredTopic, ExistingTopic, plan_changes


def test_the_named_inputs_are_the_steps_own() -> None:
    steps = {
        "preprocess": PreprocessStep,
        "sessionise": SessioniseStep,
        "label-join": LabelJoinStep,
        "learner": LearnerStep,
        "monitor": MonitorStep,
    }
    assert {name: step.inputs for name, step in steps.items()} == AGENT_INPUTS


def test_inputs_read_together_with_unequal_counts_are_named_with_their_readers() -> None:
    counts = {f"p.{topic}": 6 for inputs in AGENT_INPUTS.values() for topic in inputs}
    assert unequal_inputs(counts, "p.") == []
    counts["p.telemetry.feedback"] = 8
    (problem,) = unequal_inputs(counts, "p.")
    assert problem.startswith(
        "p.telemetry.feedback would have 8 partitions and p.telemetry.predictions 6: "
        "label-join reads them together"
    )
    assert problem.endswith("grow them together")
    # A topic the topology does not declare is not compared.
    assert unequal_inputs({"p.telemetry.feedback": 8}, "p.") == []


def _topic(name: str, partitions: int) -> DesiredTopic:
    return DesiredTopic(name, partitions, 1, {})


def test_a_plan_growing_one_of_them_is_refused_only_for_the_topology() -> None:
    existing = {
        name: ExistingTopic(name, 6, 1, {})
        for name in ("p.telemetry.predictions", "p.telemetry.feedback")
    }
    desired = [_topic("p.telemetry.predictions", 6), _topic("p.telemetry.feedback", 8)]
    assert len(plan_changes(desired, existing, "p.").refusals) == 1
    assert plan_changes(desired, existing).refusals == []  # a worker's changelogs
    together = [_topic("p.telemetry.predictions", 8), _topic("p.telemetry.feedback", 8)]
    assert plan_changes(together, existing, "p.").refusals == []
