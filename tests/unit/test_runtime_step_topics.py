"""What a step's worker looks up on Kafka at start-up: only the topics it touches.

Under ACLs (docs/security.md) a part may describe only the topics `acls plan` lists for
it, so a worker that looked up one more would be refused and stop at start-up: the
monitor, which publishes no rejections, did so with ``events.rejected``.
"""

from __future__ import annotations

import os
import subprocess
import sys

from streamlearn.agents.monitor import MonitorStep
from streamlearn.agents.preprocess import PreprocessStep
from streamlearn.runtime.records import REJECTED, step_topics
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue


def _looked_up(inputs: tuple[str, ...], outputs: tuple[str, ...], rejections: bool) -> list[str]:
    catalogue = TopicCatalogue.from_settings(Settings(topic_prefix="p."))
    registry = InMemoryRegistry()
    asked: list[str] = []

    def partitions_of(name: str) -> int:
        asked.append(name)
        return 3

    _, writers, _ = step_topics(
        catalogue, registry, inputs, outputs, partitions_of, rejections=rejections
    )
    assert sorted(writers) == sorted({*outputs, *((REJECTED,) if rejections else ())})
    return sorted(asked)


def test_a_step_without_rejections_never_looks_up_events_rejected() -> None:
    asked = _looked_up(MonitorStep.inputs, MonitorStep.outputs, rejections=False)
    assert asked == sorted(f"p.{topic}" for topic in MonitorStep.outputs)


def test_a_step_with_rejections_looks_up_events_rejected_too() -> None:
    asked = _looked_up(PreprocessStep.inputs, PreprocessStep.outputs, rejections=True)
    assert asked == sorted(f"p.{topic}" for topic in (*PreprocessStep.outputs, REJECTED))


_SCHEMA_IDS = """
from streamlearn.agents.label_join import LabelJoinStep
from streamlearn.runtime.records import step_topics
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

registry = InMemoryRegistry()
step_topics(TopicCatalogue.from_settings(Settings()), registry, LabelJoinStep.inputs,
            LabelJoinStep.outputs, lambda _: 3)
print(sorted(registry.subjects.items()))
"""


def test_a_fresh_registry_gets_the_same_schema_ids_whatever_the_hash_seed() -> None:
    """A step registers its schemas in one order in every process: with a fresh registry
    (the learning lab's, a replay's new environment) the records' bytes, which carry the
    schema id, are then the same from run to run."""
    seen = {
        subprocess.run(
            [sys.executable, "-c", _SCHEMA_IDS],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True, text=True, check=True,
        ).stdout
        for seed in range(1, 6)
    }  # fmt: skip
    assert len(seen) == 1, seen


def test_an_output_over_its_topics_limit_goes_to_events_rejected_and_the_step_goes_on() -> None:
    """Found by a new user: a valid event of 1,048,408 bytes on telemetry.events made a
    clean copy a few bytes larger, over events.clean's limit: the broker refused it, the
    worker stopped, and again at every restart; the partition read no further."""
    from prometheus_client import CollectorRegistry

    from streamlearn.runtime.metrics import AgentMetrics
    from streamlearn.runtime.records import StepOutputs

    catalogue = TopicCatalogue.from_settings(Settings())
    registry = InMemoryRegistry()
    _, writers, names = step_topics(
        catalogue, registry, ("telemetry.events",), ("monitoring.alerts",), lambda _: 3
    )
    sent: list[tuple[str, int, bytes | None, bytes | None]] = []
    metrics = AgentMetrics(CollectorRegistry())
    outputs = StepOutputs(writers, lambda *record: sent.append(record), "monitor", metrics,
                          lambda: 1_800_000_000_000, names)  # fmt: skip
    alert = {
        "alert_key": "k", "kind": "drift", "severity": "warning", "model_name": None,
        "model_version": None, "arm": None, "feature": None, "statistic": None,
        "value": None, "threshold": None, "message": "x" * 1_100_000,
        "raised_ts": 1_800_000_000_000, "source": "monitor", "window_offsets": [],
    }  # fmt: skip
    try:
        outputs.to("monitoring.alerts")("k", alert)
    except Exception as exc:  # a field the sketch above lacks: not what this test is about
        raise AssertionError(f"fix the alert fields: {exc!r}") from exc
    [(topic, _, key, value)] = sent
    assert topic == "events.rejected"
    assert key == b"k"
    rejected = writers[REJECTED].serde.decode(value)
    assert rejected["reason"] == "output_too_large"
    assert rejected["source_topic"] == "monitoring.alerts"
    assert "over the topic's limit of 1048588 bytes" in rejected["detail"]
    assert rejected["value"] is not None, "the record's bytes are kept"
    assert metrics.rejected.labels(agent="monitor", reason="output_too_large")._value.get() == 1
    # Over events.rejected's own limit (2 MiB) too: said and counted, its bytes not kept.
    sent.clear()
    outputs.to("monitoring.alerts")("k", {**alert, "message": "x" * 2_200_000})
    [(topic, _, _, value)] = sent
    assert topic == "events.rejected"
    rejected = writers[REJECTED].serde.decode(value)
    assert rejected["value"] is None
    assert "over events.rejected's limit too, not kept" in rejected["detail"]
    assert metrics.rejected.labels(agent="monitor", reason="output_too_large")._value.get() == 2


def test_a_decoded_record_rejected_by_its_step_names_its_writers_schema() -> None:
    """Found by a new user: preprocess's ``invalid_field`` rejections had no ``schema_id``,
    though the record was decoded with a schema its bytes name (an older writer's field
    may be what was invalid)."""
    from prometheus_client import CollectorRegistry

    from streamlearn.runtime.metrics import AgentMetrics
    from streamlearn.runtime.records import StepOutputs
    from streamlearn.runtime.step import Record
    from streamlearn.serde.wire import frame

    catalogue = TopicCatalogue.from_settings(Settings())
    _, writers, names = step_topics(
        catalogue, InMemoryRegistry(), ("telemetry.events",), ("events.clean",), lambda _: 3
    )
    sent: list[tuple[str, int, bytes | None, bytes | None]] = []
    outputs = StepOutputs(writers, lambda *record: sent.append(record), "preprocess",
                          AgentMetrics(CollectorRegistry()), lambda: 1_800_000_000_000,
                          names)  # fmt: skip
    for raw, schema_id in ((frame(7, b"\x02"), 7), (b"not framed", None)):
        record = Record("telemetry.events", 1, 10, b"u", {"x": 1}, raw)
        outputs.reject(record, "invalid_field", "received_ts: ahead of Kafka's")
        rejected = writers[REJECTED].serde.decode(sent.pop()[3])
        assert (rejected["schema_id"], rejected["value"]) == (schema_id, raw)
