"""What the dashboard says when Kafka does not answer: the broker's address and the
client's words (found by an operator: `end offsets: KafkaError{code=_TRANSPORT,val=-195,
str="Failed to get metadata: ..."}`, a Python repr without the address)."""

from __future__ import annotations

import threading
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from streamlearn.dashboard import offsets
from streamlearn.dashboard.follower import TopicFollower
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.dashboard.state import FollowStatus
from streamlearn.settings import Settings

BOOTSTRAP = "127.0.0.1:24635"
TRANSPORT = "Failed to get metadata: Local: Broker transport failure"
SAID = f"Kafka at {BOOTSTRAP} does not answer: {TRANSPORT}"


def _unreachable() -> KafkaException:
    return KafkaException(KafkaError(KafkaError._TRANSPORT, TRANSPORT))


class _UnreachableAdmin:
    def __init__(self, config: object) -> None:
        pass

    def poll(self, timeout: float) -> int:
        return 0

    def list_topics(self, **_: Any) -> object:
        raise _unreachable()


def test_the_end_offsets_error_names_the_broker(monkeypatch: Any) -> None:
    monkeypatch.setattr(offsets, "AdminClient", _UnreachableAdmin)
    reported: list[str | None] = []
    heard = threading.Event()

    def report(error: str | None) -> None:
        reported.append(error)
        heard.set()

    sampler = offsets.EndOffsetSampler(
        Settings(kafka_bootstrap=BOOTSTRAP), {"p.events.clean": "clean"},
        deliver=lambda t, counts: None, report=report, metrics=DashboardMetrics(),
        interval_s=0.01,
    )  # fmt: skip
    sampler.start()
    try:
        assert heard.wait(10)
    finally:
        sampler.stop()
    assert reported[0] == f"end offsets: {SAID}"


class _UnreachableConsumer:
    def list_topics(self, **_: Any) -> object:
        raise _unreachable()


class _Decoders:
    topics = ("p.model.metrics",)


def test_the_followers_metadata_error_names_the_broker() -> None:
    reports: list[FollowStatus] = []
    follower = TopicFollower(
        Settings(kafka_bootstrap=BOOTSTRAP), _Decoders(),  # type: ignore[arg-type]
        deliver=lambda batch: None, report=reports.append, metrics=DashboardMetrics(),
    )  # fmt: skip
    follower._assign_new(_UnreachableConsumer())  # type: ignore[arg-type]
    assert reports[-1].error == f"metadata: {SAID}"
