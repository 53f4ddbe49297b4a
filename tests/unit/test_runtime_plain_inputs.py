"""Steps with ``plain_inputs`` (runtime/step.py): epoch-ms timestamps and string ids in,
the same outputs as from datetimes and UUIDs (preprocess and sessionise take both)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents.label_join import LabelJoinStep
from streamlearn.agents.preprocess import PreprocessStep
from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.models import SPECS
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 30, 6, tzinfo=UTC)


def _event(i: int, user: str) -> dict[str, Any]:
    at = T0 + timedelta(seconds=7 * i)
    return {
        "event_id": str(uuid.UUID(int=i + 1)), "event_type": "page_view", "user_id": user,
        "session_hint": None, "client_ts": at - timedelta(milliseconds=120 + i),
        # one clock far off: event time falls back to the received time
        "received_ts": at + (timedelta(days=3) if i == 5 else timedelta()),
        "url": f"https://shop.example/p/{i % 4}", "referrer": None,
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        "ip": "203.0.113.9", "app_version": "web 1", "properties": {}, "context": {},
    }  # fmt: skip


def _cluster() -> LocalCluster:
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=2)
    serde = cluster.catalogue.topic("telemetry.events").serde(registry)
    for i in range(40):
        user = f"user-{i % 3}"
        cluster.produce("telemetry.events", user.encode(), serde.encode(_event(i, user)))
    return cluster


class _Seen(Step):
    name = "seen"
    inputs = ("telemetry.events",)
    outputs = ()
    plain_inputs = True

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        self.values = [r.value for r in records]


def test_a_plain_inputs_step_gets_epoch_ms_and_string_ids() -> None:
    cluster = _cluster()
    step = _Seen()
    worker = LocalWorker(cluster, step)
    worker.assign([0, 1])
    worker.run()
    value = step.values[0]
    assert type(value["received_ts"]) is int
    assert type(value["event_id"]) is str


def test_preprocess_and_sessionise_write_the_same_bytes_from_either_decoding() -> None:
    written = {}
    for plain in (True, False):
        cluster = _cluster()
        settings = Settings(max_clock_skew_s=3600, session_gap_s=20)
        for cls in (PreprocessStep, SessioniseStep):
            # The same agent decoded with logical types, as callers outside the runtime do.
            step_class = cls if plain else type(cls.__name__, (cls,), {"plain_inputs": False})
            step = step_class(settings, AgentMetrics())
            worker = LocalWorker(cluster, step, now_ms=0)
            worker.assign([0, 1])
            worker.run(max_records=7)
            worker.revoke([0, 1])
        written[plain] = {
            topic: [(m.partition, m.key, m.value) for m in cluster.messages(topic)]
            for topic in ("events.clean", "events.sessions")
        }
    assert written[True] == written[False]
    assert len(written[True]["events.clean"]) == 40
    assert written[True]["events.sessions"], "sessions closed within the run"


def _joined_cluster() -> LocalCluster:
    """Predictions of ``ctr`` and their feedback: clicks, impressions only, and one late
    request whose feedback moves the feedback clock past every horizon (negatives)."""
    registry = InMemoryRegistry()
    cluster = LocalCluster(TopicCatalogue.from_settings(Settings()), registry, partitions=2)
    predictions = cluster.catalogue.topic("telemetry.predictions").serde(registry)
    feedback = cluster.catalogue.topic("telemetry.feedback").serde(registry)
    for i in range(30):
        request_id, served = f"r-{i}", T0 + timedelta(seconds=3 * i)
        cluster.produce(
            "telemetry.predictions",
            request_id.encode(),
            predictions.encode(
                {
                    "request_id": request_id, "user_id": f"u-{i % 4}", "model_name": "ctr",
                    "model_version": 2, "experiment": None, "arm": None,
                    "features": {"price": 10.0 + i, "category": "books", "hour": i % 24},
                    "context": {"placement": "top"}, "score": 0.1 + i / 100,
                    "decision": None, "degraded": False, "degraded_reason": None,
                    "served_ts": served, "worker_version": "0.1.0", "latency_ms": 1.5,
                }
            ),
        )  # fmt: skip
        kinds = ("impression", "click") if i % 3 == 0 else ("impression",)
        for n, kind in enumerate(kinds):
            at = served + timedelta(seconds=1 + n)
            cluster.produce(
                "telemetry.feedback",
                request_id.encode(),
                feedback.encode(
                    {
                        "request_id": request_id, "event_id": uuid.UUID(int=100 * i + n + 1),
                        "kind": kind, "value": None, "user_id": None,
                        "client_ts": at - timedelta(milliseconds=300), "received_ts": at,
                        "app_version": "web 1", "properties": {},
                    }
                ),
            )  # fmt: skip
    return cluster


def test_label_join_writes_the_same_examples_from_either_decoding() -> None:
    written = {}
    for plain in (True, False):
        cluster = _joined_cluster()
        late = cluster.catalogue.topic("telemetry.feedback").serde(cluster.registry)
        at = T0 + timedelta(hours=3)
        for n in range(4):  # in both partitions
            cluster.produce(
                "telemetry.feedback",
                f"r-late-{n}".encode(),
                late.encode(
                    {
                        "request_id": f"r-late-{n}", "event_id": uuid.UUID(int=99_000 + n),
                        "kind": "click", "value": None, "user_id": None, "client_ts": at,
                        "received_ts": at, "app_version": "web 1", "properties": {},
                    }
                ),
            )  # fmt: skip
        # The same agent decoding every field with logical types (datetimes, UUIDs).
        logical = {"plain_inputs": False, "input_fields": {}}
        step_class = LabelJoinStep if plain else type("Logical", (LabelJoinStep,), logical)
        step = step_class(Settings(), AgentMetrics(), SPECS)
        worker = LocalWorker(cluster, step, now_ms=0)
        worker.assign([0, 1])
        worker.run(max_records=7)
        worker.revoke([0, 1])
        examples = cluster.messages("training.examples")
        written[plain] = [(m.partition, m.key, m.value) for m in examples]
    assert written[True] == written[False]
    serde = cluster.catalogue.topic("training.examples").serde(cluster.registry)
    labels = sorted(serde.decode(value)["label"] for _, _, value in written[True])
    assert labels == [0.0] * 20 + [1.0] * 10
