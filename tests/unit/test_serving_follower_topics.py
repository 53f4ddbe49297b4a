"""What the model-state follower says when Kafka tells it nothing of its topics."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError

from streamlearn.models import SPECS
from streamlearn.serving import follower as follower_module
from streamlearn.serving.experiments import ExperimentBook
from streamlearn.serving.follower import StateFollower
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore
from tests.serving_support import KEY


class _Cluster:
    def __init__(self, topics: dict[str, set[int]]) -> None:
        self.topics = topics

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.topics.get(topic)


class _Client:
    def __init__(self, topics: dict[str, set[int]]) -> None:
        self.topics = topics

    async def fetch_all_metadata(self) -> _Cluster:
        return _Cluster(self.topics)


def _follower(user: str | None) -> StateFollower:
    config: dict[str, Any] = {} if user is None else {"sasl_plain_username": user}
    return StateFollower(
        consumer_config=config,
        model_topic="model.state",
        experiment_topic="experiments",
        snapshot_serde=cast(Any, None),
        experiment_serde=cast(Any, None),
        key=KEY,
        specs=SPECS,
        store=ModelStore(["ctr"]),
        book=ExperimentBook(),
        metrics=ServingMetrics(),
        on_rejected=lambda exc: None,
    )


@pytest.mark.parametrize(
    ("user", "who"),
    [("streamlearn-dashboard", "Kafka user 'streamlearn-dashboard'"),
     (None, "this Kafka principal")],
)  # fmt: skip
async def test_a_topic_kafka_does_not_list_names_the_user_and_its_acls_as_well(
    monkeypatch: pytest.MonkeyPatch, user: str | None, who: str
) -> None:
    """Found by an operator: a worker run as a user without DESCRIBE on model.state
    logged "topic model.state not found" every second, on a cluster that had it (Kafka
    leaves a topic a user may not describe out of a full metadata answer)."""
    monkeypatch.setattr(follower_module, "METADATA_WAIT_S", 0.0)
    consumer = SimpleNamespace(_client=_Client({"experiments": {0}}))
    with pytest.raises(KafkaError) as raised:
        await _follower(user)._assign(cast(AIOKafkaConsumer, consumer))
    said = str(raised.value)
    assert "topic model.state not found" in said
    assert f"{who} may not describe topic model.state" in said
    assert "streamlearn acls plan" in said
    assert "streamlearn topics apply" in said
