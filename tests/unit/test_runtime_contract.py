"""Every agent passes the runtime's contract (streamlearn.runtime.checks): deterministic,
crash-safe between deliver / write state / commit, and movable between workers.

Each runs in the local runner on realistic input: the ingest data set (duplicates, bots,
poison records, late events), sessionise on what preprocess made of it, label-join on a
synthetic world's predictions and feedback, the learner on what label-join made of those.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from streamlearn.agents import STEPS
from streamlearn.kafka_clients import key_partition
from streamlearn.models.synthetic import ClickWorld
from streamlearn.runtime.checks import ContractViolation, InputRecord, check_step
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from tests import ingest_dataset

PARTITIONS = 3
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SETTINGS = Settings(
    session_gap_s=ingest_dataset.GAP_S,
    session_allowed_lateness_s=ingest_dataset.LATENESS_S,
    bot_burst_length=ingest_dataset.BURST_LENGTH,
    model_signing_key=SecretStr("contract-check-key"),
    snapshot_every_examples=40,
    models=["ctr", "ctr_tree"],
    monitor_window_records=20,
    monitor_reference_records=40,
    monitor_reference_span_s=0,
    monitor_consecutive_windows=1,
)
CATALOGUE = TopicCatalogue.from_settings(SETTINGS)


def _maker(name: str) -> Callable[[LocalCluster], Step]:
    """Fresh ``name`` steps for a cluster (the learner reads its snapshots there)."""
    return lambda cluster: STEPS[name](cluster.environment(SETTINGS, AgentMetrics()))


def _partition_keys(prefix: str) -> dict[int, str]:
    """A key per partition."""
    keys: dict[int, str] = {}
    for n in itertools.count():
        key = f"{prefix}-{n}"
        keys.setdefault(key_partition(key.encode(), PARTITIONS), key)
        if len(keys) == PARTITIONS:
            return keys


def _events(registry: InMemoryRegistry) -> list[InputRecord]:
    serde = CATALOGUE.topic("telemetry.events").serde(registry)
    data = ingest_dataset.build(serde, seed=5, humans=12)
    template = next(iter(data.clean_events.values()))
    later = template["client_ts"] + timedelta(days=1)
    flush = [
        (user.encode(), serde.encode(dict(template, event_id=str(uuid.uuid4()), user_id=user,
                                          client_ts=later, received_ts=later)))
        for user in _partition_keys("flush").values()
    ]  # fmt: skip
    return [InputRecord("telemetry.events", k or b"", v or b"") for k, v in data.records + flush]


def _through(step: str, records: list[InputRecord], registry: InMemoryRegistry) -> LocalCluster:
    cluster = LocalCluster(CATALOGUE, registry, PARTITIONS)
    for record in records:
        cluster.produce(record.topic, record.key, record.value)
    worker = LocalWorker(cluster, _maker(step)(cluster))
    worker.assign(range(PARTITIONS))
    worker.run()
    return cluster


def _as_inputs(cluster: LocalCluster, topic: str) -> list[InputRecord]:
    return [InputRecord(topic, m.key or b"", m.value or b"") for m in cluster.messages(topic)]


def _telemetry(registry: InMemoryRegistry) -> list[InputRecord]:
    predictions, feedback, _ = ClickWorld(seed=4).telemetry(300, T0, every_ms=3000)
    # Later feedback in every partition closes every horizon (it is held, then orphaned).
    late = T0 + timedelta(hours=3)
    feedback += [
        dict(feedback[0], request_id=rid, event_id=str(uuid.uuid4()), client_ts=late,
             received_ts=late)
        for rid in _partition_keys("closing").values()
    ]  # fmt: skip
    prediction_serde = CATALOGUE.topic("telemetry.predictions").serde(registry)
    feedback_serde = CATALOGUE.topic("telemetry.feedback").serde(registry)
    stream = [(p["served_ts"], "telemetry.predictions", p) for p in predictions]
    stream += [(f["received_ts"], "telemetry.feedback", f) for f in feedback]
    return [
        InputRecord(
            topic,
            record["request_id"].encode(),
            (prediction_serde if topic == "telemetry.predictions" else feedback_serde).encode(
                record
            ),
        )
        for _, topic, record in sorted(stream, key=lambda item: (item[0], item[1]))
    ]


def _inputs(name: str, registry: InMemoryRegistry) -> list[InputRecord]:
    if name == "preprocess":
        return _events(registry)
    if name == "sessionise":
        return _as_inputs(_through("preprocess", _events(registry), registry), "events.clean")
    telemetry = _telemetry(registry)
    if name == "label-join":
        return telemetry
    examples = _as_inputs(_through("label-join", telemetry, registry), "training.examples")
    if name != "monitor":
        return examples
    events = _events(registry)
    clean = _as_inputs(_through("preprocess", events, registry), "events.clean")
    predictions = [r for r in telemetry if r.topic == "telemetry.predictions"]
    return events + clean + predictions + examples


@pytest.mark.parametrize("name", list(STEPS))
def test_every_agent_keeps_the_contract(name: str) -> None:
    registry = InMemoryRegistry()
    records = _inputs(name, registry)
    outputs = check_step(
        _maker(name), records, catalogue=CATALOGUE, registry=registry, partitions=PARTITIONS
    )
    assert outputs


class _Forgetful(Step):
    """Counts events per user in memory only: a crash loses its counts."""

    name = "forgetful"
    inputs = ("events.clean",)
    outputs = ("events.sessions",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def process(self, partition: int, records: Any, emit: Emit) -> None:
        for record in records:
            user = record.value["user_id"]
            self.counts[user] = self.counts.get(user, 0) + 1
            if self.counts[user] == 3:
                emit.to("events.sessions")(user, _session(record))


def _session(record: Record) -> dict[str, Any]:
    event = record.value
    return {
        "session_id": f"{event['user_id']}:x", "user_id": event["user_id"],
        "start_ts": event["event_ts"], "end_ts": event["event_ts"], "duration_ms": 0,
        "event_count": 3, "page_count": 0, "pages": [], "device_class": None, "is_bot": False,
        "first_event_id": str(event["event_id"]), "last_event_id": str(event["event_id"]),
        "late_events": 0, "is_correction": False, "closed_ts": event["event_ts"],
    }  # fmt: skip


def test_the_check_catches_state_kept_outside_the_stores() -> None:
    registry = InMemoryRegistry()
    records = _as_inputs(_through("preprocess", _events(registry), registry), "events.clean")
    with pytest.raises(ContractViolation, match=r"lost|no run without it makes"):
        check_step(lambda _: _Forgetful(), records, catalogue=CATALOGUE, registry=registry,
                   partitions=PARTITIONS)  # fmt: skip
