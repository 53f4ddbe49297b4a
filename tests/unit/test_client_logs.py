"""librdkafka's lines in long-running processes: each kind once per window."""

from __future__ import annotations

import logging
import time

import pytest
from confluent_kafka import Consumer, KafkaException

from streamlearn import kafka_clients
from streamlearn.client_logs import CLIENT_LOG, RepeatedLineFilter
from streamlearn.ports import free_port
from streamlearn.settings import Settings

REFUSED = "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"


def _line(text: str, client: str = "rdkafka#consumer-1") -> logging.LogRecord:
    return logging.LogRecord(
        "librdkafka", logging.ERROR, "", 0, "%s [%s] %s", ("FAIL", client, text), None
    )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_kind_is_said_once_per_window_then_with_how_many_were_left_out() -> None:
    clock = Clock()
    repeats = RepeatedLineFilter(window_s=30, clock=clock)
    assert repeats.filter(_line(f"{REFUSED} (after 0ms in state CONNECT)"))
    clock.now += 1
    assert not repeats.filter(_line(f"{REFUSED} (after 3ms in state CONNECT)"))
    assert not repeats.filter(
        _line(REFUSED + " (after 0ms in state CONNECT)", "rdkafka#producer-2")
    )
    assert repeats.filter(_line("another story")), "another kind is said at once"
    clock.now += 30
    again = _line(f"{REFUSED} (after 0ms in state CONNECT)")
    assert repeats.filter(again)
    assert again.getMessage().endswith("(and 2 more like it in the last 30 s)")
    assert REFUSED in again.getMessage()
    assert not repeats.filter(_line(REFUSED + " (after 0ms in state CONNECT)"))


def test_kinds_remembered_are_bounded() -> None:
    repeats = RepeatedLineFilter(window_s=30, clock=Clock(), max_kinds=3)
    for n in range(10):
        assert repeats.filter(_line(f"kind {n}"))
    assert len(repeats._said) == 3
    assert not repeats.filter(_line("kind 9"))
    assert repeats.filter(_line("kind 0")), "forgotten, so said again"


def test_long_running_clients_log_through_the_filter_and_commands_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)
    assert kafka_clients.confluent_config(Settings())["logger"] is CLIENT_LOG
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_CRITICAL)
    assert "logger" not in kafka_clients.confluent_config(Settings())


def test_a_real_client_without_its_broker_says_so_once_not_twenty_times_a_second(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A dashboard without a broker printed ~400 "Connect ... failed" lines in 10 s."""
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens: every connection is refused
    consumer = Consumer(
        kafka_clients.confluent_config(Settings(kafka_bootstrap=nobody), **{"group.id": "g"})
    )
    caplog.set_level(logging.INFO, logger="librdkafka")
    try:
        started = time.monotonic()
        while time.monotonic() - started < 2:
            with pytest.raises(KafkaException):
                consumer.list_topics(timeout=0.5)
            consumer.poll(0.05)  # librdkafka queues its lines for the thread that polls
    finally:
        consumer.close()
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]
