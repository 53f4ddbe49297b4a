"""A worker blocked on Kafka at its start says so early, names the broker, and repeats
at a bounded rate (found by an operator: `agents run` said nothing for 32 s)."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamlearn.exceptions import StreamlearnError
from streamlearn.runtime.kafka_wait import saying_while_waiting_for_kafka

BOOTSTRAP = "127.0.0.1:24631"


def test_a_wait_for_kafka_is_said_at_once_naming_the_broker_then_at_a_bounded_rate() -> None:
    said: list[str] = []
    heard = threading.Event()

    def say(line: str) -> None:
        said.append(line)
        if len(said) == 3:
            heard.set()

    with saying_while_waiting_for_kafka(BOOTSTRAP, say, first_after_s=0.01, every_s=0.05):
        # Blocked on Kafka, as a metadata request to an unreachable broker is.
        heard.wait(10)
    count = len(said)
    assert count >= 3
    assert said[0] == (
        f"waiting for Kafka at {BOOTSTRAP} (STREAMLEARN_KAFKA_BOOTSTRAP or "
        "--bootstrap-servers sets it)"
    )
    # The repeats say for how long, and the next one waits every_s: one line per period.
    assert all(line.startswith(f"still waiting for Kafka at {BOOTSTRAP} (") for line in said[1:])
    threading.Event().wait(0.2)
    assert len(said) == count, "nothing is said once Kafka answered"


def test_a_quick_answer_says_nothing() -> None:
    said: list[str] = []
    with saying_while_waiting_for_kafka(BOOTSTRAP, said.append, first_after_s=30.0):
        pass
    assert said == []


def test_a_broker_that_never_answered_is_named_in_the_error() -> None:
    """The error after the wait said `Kafka: Failed to get metadata` without the address
    tried: it now names it."""
    transport = KafkaException(
        KafkaError(KafkaError._TRANSPORT, "Failed to get metadata: Local: Broker transport failure")
    )
    with (
        pytest.raises(StreamlearnError) as raised,
        saying_while_waiting_for_kafka(BOOTSTRAP, lambda line: None, first_after_s=30.0),
    ):
        raise transport
    message = str(raised.value)
    assert f"Kafka at {BOOTSTRAP} did not answer" in message
    assert "Failed to get metadata" in message
    assert "STREAMLEARN_KAFKA_BOOTSTRAP" in message
    assert raised.value.__cause__ is transport


def test_an_error_the_broker_answered_with_is_left_as_it_is() -> None:
    """A refusal (ACLs) is no unreachable broker: its own message and hint stay."""
    refused = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied"))
    with (
        pytest.raises(KafkaException) as raised,
        saying_while_waiting_for_kafka(BOOTSTRAP, lambda line: None, first_after_s=30.0),
    ):
        raise refused
    assert raised.value is refused
