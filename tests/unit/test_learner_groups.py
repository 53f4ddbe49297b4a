"""Which other groups run the learner on this namespace's ``training.examples`` (stand-in
group descriptions, as confluent-kafka's AdminClient gives them)."""

from __future__ import annotations

from types import SimpleNamespace

from confluent_kafka import TopicPartition

from streamlearn.agents import AGENT_NAMES
from streamlearn.runtime.group_settings import agent_client_id, settings_fingerprint
from streamlearn.runtime.learner_groups import learner_fingerprints, runs_the_learner
from streamlearn.settings import Settings

SETTINGS = Settings()
LEARNERS = learner_fingerprints(SETTINGS, AGENT_NAMES)


def _group(agents: list[str], topic: str, settings: Settings = SETTINGS) -> SimpleNamespace:
    member = SimpleNamespace(
        client_id=agent_client_id(settings_fingerprint(settings, agents)),
        assignment=SimpleNamespace(topic_partitions=[TopicPartition(topic, 0)]),
    )
    return SimpleNamespace(members=[member])


def test_a_worker_running_the_learner_beside_any_agents_is_one() -> None:
    for agents in (["learner"], ["preprocess", "sessionise", "label-join", "learner"]):
        assert runs_the_learner(_group(agents, "ns.training.examples"), LEARNERS,
                                "ns.training.examples")  # fmt: skip


def test_a_monitor_reading_the_examples_is_none() -> None:
    assert not runs_the_learner(
        _group(["monitor"], "ns.training.examples"), LEARNERS, "ns.training.examples"
    )


def test_a_learner_of_another_namespace_or_of_other_models_is_none() -> None:
    assert not runs_the_learner(
        _group(["learner"], "shadow.ns.training.examples"), LEARNERS, "ns.training.examples"
    )
    other_models = Settings(models=["ctr_tree"])
    assert not runs_the_learner(
        _group(["learner"], "ns.training.examples", other_models), LEARNERS, "ns.training.examples"
    )
