"""A worker's look-up of its topics' partitions says what Kafka's answer means."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError

from streamlearn.runtime import faust_app
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.settings import Settings


def _cluster_answers(monkeypatch: pytest.MonkeyPatch, topic: Any) -> None:
    """An AdminClient whose metadata names ``topic`` as the given answer."""

    class Admin:
        def __init__(self, config: dict[str, Any]) -> None:
            pass

        def list_topics(self, name: str, timeout: float) -> SimpleNamespace:
            return SimpleNamespace(topics={} if topic is None else {name: topic})

    monkeypatch.setattr(faust_app, "AdminClient", Admin)


def test_a_topic_the_user_may_not_describe_names_the_user_and_the_acls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found running preprocess under another part's Kafka user: "topic events.clean does
    not exist: run `streamlearn topics apply` first", on a cluster that had it. Kafka
    answers a user without DESCRIBE on a topic TOPIC_AUTHORIZATION_FAILED whether or not
    it exists, so the ACLs and the user are as likely a cause as a missing topic."""
    refused = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    _cluster_answers(monkeypatch, SimpleNamespace(error=refused, partitions={}))
    settings = Settings(kafka_sasl_username="streamlearn-collector")
    with pytest.raises(RuntimeConfigurationError) as failed:
        faust_app.topic_partitions(settings, "events.clean")
    message = str(failed.value)
    assert "Kafka user 'streamlearn-collector' may not describe topic events.clean" in message
    assert "streamlearn acls plan" in message
    assert "STREAMLEARN_KAFKA_SASL_USERNAME" in message
    assert "streamlearn topics apply" in message, "it may also be missing: Kafka hides which"


def test_a_missing_topic_still_says_to_apply_the_topology(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    _cluster_answers(monkeypatch, SimpleNamespace(error=missing, partitions={}))
    applied = r"^topic t does not exist: run `streamlearn topics apply`"
    with pytest.raises(RuntimeConfigurationError, match=applied):
        faust_app.topic_partitions(Settings(), "t")


def test_an_existing_topic_gives_its_partition_count(monkeypatch: pytest.MonkeyPatch) -> None:
    _cluster_answers(monkeypatch, SimpleNamespace(error=None, partitions={0: 0, 1: 1, 2: 2}))
    assert faust_app.topic_partitions(Settings(), "t") == 3
