"""A producer that gets no word from a broker while Kafka answers a new client is stuck,
and says so to its process's liveness; brokers that are away are not its fault."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streamlearn.collector.producer import AsyncProducer, DeliveryFailedError
from streamlearn.producer_watch import ProducerWatch, from_a_broker
from streamlearn.settings import Settings

STALL_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Brokers:
    """What a new client's metadata request gets: None (answered) or why not."""

    def __init__(self) -> None:
        self.unanswered: str | None = None
        self.asked = 0

    def __call__(self) -> str | None:
        self.asked += 1
        return self.unanswered


def _watch() -> tuple[ProducerWatch, Clock, Brokers]:
    clock, brokers = Clock(), Brokers()
    settings = Settings(kafka_producer_stall_s=STALL_S)
    return ProducerWatch(settings, ["t"], clock=clock, ask=brokers), clock, brokers


def _check(watch: ProducerWatch) -> None:
    asyncio.run(watch.check())


def test_records_waiting_with_no_word_while_kafka_answers_others_stall_the_producer() -> None:
    watch, clock, brokers = _watch()
    watch.handed()
    clock.now += STALL_S - 1
    _check(watch)
    assert (watch.stalled, brokers.asked) == (None, 0), "not asked before the stall time"
    clock.now += 1
    _check(watch)
    # Kafka answered a new client just now: the producer gets the same time to reconnect.
    assert watch.stalled is None
    assert brokers.asked == 1
    clock.now += STALL_S
    _check(watch)
    assert watch.stalled is not None
    assert "120s with no word from a broker" in watch.stalled
    assert "restart this process" in watch.stalled
    # Word from a broker after all: no longer stuck.
    watch.heard(waiting=False)
    assert watch.stalled is None
    assert watch.waited_s() == 0.0


def test_brokers_that_are_away_never_stall_the_producer() -> None:
    watch, clock, brokers = _watch()
    brokers.unanswered = "all brokers down"
    watch.handed()
    for _ in range(20):
        clock.now += STALL_S
        _check(watch)
    assert watch.stalled is None
    assert brokers.asked == 20
    assert watch.waited_s() == 20 * STALL_S


def test_back_from_an_outage_a_producer_has_the_stall_time_to_reconnect() -> None:
    watch, clock, brokers = _watch()
    brokers.unanswered = "all brokers down"
    watch.handed()
    clock.now += 11 * 60  # an eleven-minute outage
    _check(watch)
    brokers.unanswered = None  # the brokers are back
    clock.now += 5
    _check(watch)
    clock.now += STALL_S - 10
    _check(watch)
    assert watch.stalled is None, "it had not had the stall time since Kafka came back"
    watch.heard(waiting=True)  # it reconnected; more records wait
    clock.now += STALL_S - 1
    _check(watch)
    assert watch.stalled is None


def test_an_idle_producer_is_never_asked_about() -> None:
    watch, clock, brokers = _watch()
    watch.handed()
    watch.heard(waiting=False)
    clock.now += 100 * STALL_S
    _check(watch)
    assert (watch.stalled, brokers.asked, watch.waited_s()) == (None, 0, 0.0)
    # Records handed after a long quiet wait from then, not from the last word.
    watch.handed()
    clock.now += 1
    assert watch.waited_s() == 1.0


def test_a_fatal_error_stalls_the_producer_for_good(caplog: pytest.LogCaptureFixture) -> None:
    watch, _clock, _brokers = _watch()
    # A line of this test's own: librdkafka's logger passes a line once per 10 s in the
    # whole process, and an earlier test's real producer may just have logged "1/1
    # brokers are down" (the test failed after test_collector_write_keys.py).
    line = "1/1 brokers are down (test_a_fatal_error_stalls_the_producer_for_good)"
    watch.on_error(KafkaError(KafkaError._ALL_BROKERS_DOWN, line))
    assert watch.stalled is None
    # Logged, as librdkafka logs its errors when no callback takes them.
    assert line in caplog.text
    watch.on_error(KafkaError(KafkaError._FATAL, "out of order sequence", fatal=True))
    assert watch.stalled is not None
    assert "out of order sequence" in watch.stalled
    watch.heard(waiting=False)
    assert watch.stalled is not None, "librdkafka produces nothing after a fatal error"


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (None, True),
        (KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), True),
        (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), True),
        (KafkaError(KafkaError._UNKNOWN_TOPIC), True),
        (KafkaError(KafkaError._MSG_TIMED_OUT), False),
        (KafkaError(KafkaError._TRANSPORT), False),
    ],
)
def test_only_a_confirmation_or_a_brokers_error_is_word_from_a_broker(
    error: KafkaError | None, word: bool
) -> None:
    assert from_a_broker(error) is word


def _producer(watch: ProducerWatch, **config: Any) -> AsyncProducer:
    return AsyncProducer({"log_level": 3, "linger.ms": 5, **config}, watch)


def test_the_collectors_producer_tells_its_watch_what_it_hands_over_and_hears() -> None:
    watch, clock, _brokers = _watch()
    # librdkafka's in-process mock cluster: records are confirmed as by a broker.
    producer = _producer(watch, **{"bootstrap.servers": "", "test.mock.num.brokers": 1})
    try:
        asyncio.run(producer.produce([("t", b"k", b"v")] * 3))
        assert watch.waited_s() == 0.0
    finally:
        producer.close()
    # A producer that reaches no broker: its records time out in the client, no word.
    nowhere = _producer(watch, **{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300})
    try:
        with pytest.raises(DeliveryFailedError, match="timed out"):
            asyncio.run(nowhere.produce([("t", b"k", b"v")]))
        clock.now += 5
        assert watch.waited_s() == 5.0
    finally:
        nowhere.close()


class FatalOnPoll:
    """A producer whose ``poll`` raises the fatal error, as confluent-kafka does: an
    idempotent producer refused its producer id (a principal with WRITE on none of the
    cluster's topics) answers ``poll`` with KafkaException, and never calls error_cb."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.polls = 0

    def poll(self, timeout: float) -> int:
        self.polls += 1
        if self.polls == 1:
            raise KafkaException(
                KafkaError(
                    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                    "Failed to acquire idempotence PID from broker",
                    fatal=True,
                )
            )
        time.sleep(timeout)
        return 0

    def flush(self, timeout: float) -> int:
        return 0

    def __len__(self) -> int:
        return 0


def test_a_fatal_error_poll_raises_stalls_the_producer_and_polling_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found under ACLs: the collector run as a user without WRITE. The exception ended the
    poll thread with a traceback, ``/healthz`` said ok for good, and every post was a 503:
    the watch never heard of the fatal error, so nothing restarted the collector."""
    monkeypatch.setattr("streamlearn.collector.producer.Producer", FatalOnPoll)
    watch, _clock, _brokers = _watch()
    producer = _producer(watch)
    try:
        deadline = time.monotonic() + 5
        while watch.stalled is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watch.stalled is not None
        assert "Failed to acquire idempotence PID" in watch.stalled
        assert producer._poller.is_alive(), "reports of records queued before still arrive"
    finally:
        producer.close()
    assert "Traceback" not in caplog.text
