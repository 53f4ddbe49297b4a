"""The monitor agent as users run it (`agents run --only monitor`) on the real broker, over
the records the simulated world produces with changes injected (the lab: the real
preprocess and label-join steps made them, offline): each change raises its alert within
the goal, nothing is raised before it, and the alerts are exactly those the same step
raises in the local runner over the same log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents import STEPS
from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from streamlearn.simulate.changes import Change
from streamlearn.simulate.lab import Lab, Serving
from streamlearn.simulate.traffic import TrafficConfig
from streamlearn.topology.catalogue import TopicCatalogue
from tests.agent_workers import Workers, read_topic, running
from tests.support import ordered_producer

CHANGE_AT_S = 120.0
DURATION_S = 200.0
GOAL = timedelta(seconds=60)
INPUTS = ("telemetry.events", "events.clean", "telemetry.predictions", "training.examples")
# As `up --simulate` runs it.
MONITOR_ENV = {
    "STREAMLEARN_LABEL_HORIZON_S": "20",
    "STREAMLEARN_LABEL_ALLOWED_LATENESS_S": "5",
    "STREAMLEARN_MONITOR_REFERENCE_RECORDS": "300",
    "STREAMLEARN_MONITOR_REFERENCE_SPAN_S": "60",
    "STREAMLEARN_MONITOR_WINDOW_RECORDS": "100",
}
CHANGES = {
    "feature_drift": ("drift", "price"),
    "field_dropped": ("null_rate", "session_hint"),
    "bot_wave": ("pipeline", "filtered_share"),
}


def _identity(alert: dict[str, Any]) -> tuple[Any, ...]:
    raised = alert["raised_ts"]
    return (alert["alert_key"], alert["labels"]["partition"], raised, round(alert["value"], 9))


def _through_the_broker(
    system_settings: Settings, registry: RegistryClient, lab: Lab, expected: int
) -> list[dict[str, Any]]:
    """The lab's inputs produced to the broker (same partitions and order, the real
    registry's ids), then a monitor worker over them: the alerts it raises."""
    producer = ordered_producer(system_settings.kafka_bootstrap)
    catalogue = TopicCatalogue.from_settings(system_settings)
    for topic in INPUTS:
        name, serde = catalogue.topic(topic).name, catalogue.topic(topic).serde(registry)
        for record in lab.records([topic]):
            producer.produce(name, key=record.key.encode(), value=serde.encode(record.value),
                             partition=record.partition)  # fmt: skip
            producer.poll(0)
    assert producer.flush(60) == 0

    workers = Workers(system_settings, only="monitor", group="monitor", **MONITOR_ENV)
    alerts_serde = catalogue.topic("monitoring.alerts").serde(registry)
    with running(workers, 1):
        messages = read_topic(system_settings, "monitoring.alerts",
                              lambda found: len(found) >= expected, timeout_s=180)  # fmt: skip
    alerts = [alerts_serde.decode(m.value()) for m in messages]
    return alerts


@pytest.mark.timeout(300)
def test_injected_changes_raise_their_alerts_on_the_broker(system_settings: Settings) -> None:
    lab_settings = Settings(
        label_horizon_s=20, label_allowed_lateness_s=5, monitor_reference_records=300,
        monitor_reference_span_s=60,
        monitor_window_records=100,
    )  # fmt: skip
    changes = tuple(Change(kind, CHANGE_AT_S) for kind in CHANGES)  # type: ignore[arg-type]
    lab = Lab(
        TrafficConfig(rate=100.0, users=5000, seed=3, changes=changes),
        settings=lab_settings,
        serving=Serving(arms=("logistic", "tree")),
    )
    lab.run(DURATION_S, extra_steps=[STEPS["monitor"]])
    expected = sorted(_identity(r.value) for r in lab.records(["monitoring.alerts"]))
    assert expected, "the lab's own monitor raised nothing"

    with RegistryClient(system_settings.schema_registry_url) as registry:
        alerts = _through_the_broker(system_settings, registry, lab, len(expected))

    assert sorted(_identity(a) for a in alerts) == expected
    change_at = datetime.fromtimestamp(lab.start_ms / 1000, UTC) + timedelta(seconds=CHANGE_AT_S)
    assert all(a["raised_ts"] >= change_at for a in alerts), [a["message"] for a in alerts]
    for kind, (alert_kind, feature) in CHANGES.items():
        matching = [
            a for a in alerts if (a["kind"], a["labels"]["feature"]) == (alert_kind, feature)
        ]
        assert matching, f"{kind}: no {alert_kind} alert on {feature}"
        assert min(a["raised_ts"] for a in matching) - change_at <= GOAL, kind
