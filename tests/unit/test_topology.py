from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from streamlearn.topology import (
    TopologyError,
    desired_topics,
    load_topology,
    parse_topology,
    plan_changes,
)
from streamlearn.topology.plan import AddPartitions, AlterConfig, CreateTopic, ExistingTopic

REPO_ROOT = Path(__file__).resolve().parents[2]

# The topics table of DESIGN.md: name → (cleanup policy, value schema).
DESIGN_TOPICS = {
    "telemetry.events": ("delete", "TelemetryEvent"),
    "telemetry.predictions": ("delete", "PredictionServed"),
    "telemetry.feedback": ("delete", "Feedback"),
    "events.clean": ("delete", "CleanEvent"),
    "events.rejected": ("delete", "RejectedRecord"),
    "events.sessions": ("delete", "Session"),
    "training.examples": ("delete", "TrainingExample"),
    "model.state": ("compact", "ModelSnapshot"),
    "model.metrics": ("delete", "ModelMetrics"),
    "monitoring.alerts": ("delete", "Alert"),
    "monitoring.drift": ("delete", "DriftReport"),
    "experiments": ("compact", "Experiment"),
    "_schemas": ("compact", None),
}

MINIMAL = """\
version: 1
topics:
  - name: orders
    key: order id
    value_schema: Order
    cleanup_policy: delete
    retention: 7d
"""


def test_shipped_topology_declares_every_topic_of_the_design() -> None:
    topology = load_topology(REPO_ROOT / "topology" / "topics.yaml")
    declared = {t.name: (t.cleanup_policy, t.value_schema) for t in topology.topics}
    assert declared == DESIGN_TOPICS
    state = topology.topic("model.state")
    assert state.compacted
    assert state.max_message_bytes is not None
    assert state.max_message_bytes >= 8 * 1024 * 1024
    assert topology.topic("telemetry.events").retention == 7 * 86_400_000
    assert topology.topic("events.clean").retention == 30 * 86_400_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL.replace("retention: 7d", "retention: 7x"), r"t.yaml:7: topics.0.retention: .*7x"),
        (MINIMAL + "    partitons: 3\n", r"t.yaml:8: topics.0.partitons: unknown field"),
        (MINIMAL.replace("delete", "remove"), r"t.yaml:6: topics.0.cleanup_policy"),
        (MINIMAL.replace("version: 1", "version: 2"), r"t.yaml:1: version"),
        (
            MINIMAL + "  - name: orders\n    key: k\n    value_schema: null\n"
            "    cleanup_policy: compact\n    retention: forever\n",
            r"declared twice",
        ),
        (MINIMAL.replace("name: orders", "name: 'bad topic'"), r"not a legal Kafka topic name"),
        (MINIMAL + "    configs:\n      retention.ms: '5'\n", r"use the dedicated field"),
        ("version: 1\ntopics: [\n", r"t.yaml:3: invalid YAML"),
        ("- just a list\n", r"expected a mapping"),
        # Found by a new user: `topics diff` took these and `apply` failed on them (or
        # created something else: `true` made 1 partition).
        (MINIMAL + "    partitions: true\n", r"t.yaml:8: topics.0.partitions: .*integer"),
        (MINIMAL + "    partitions: '6'\n", r"t.yaml:8: topics.0.partitions: .*integer"),
        (MINIMAL + "    partitions: 100000000\n", r"t.yaml:8: topics.0.partitions: .*100000"),
        (
            MINIMAL + "    partitions: 1\n    partitions: 2\n",
            r"t.yaml:9: invalid YAML: key 'partitions' given twice",
        ),
        (
            MINIMAL.replace("retention: 7d", "retention: 99999999999999999d"),
            r"t.yaml:7: topics.0.retention: .*longer than Kafka",
        ),
    ],
)
def test_invalid_topology_names_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(TopologyError, match=expected):
        parse_topology(text, "t.yaml")


def test_unreadable_file_is_a_topology_error(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "absent.yaml")


def test_defaults_prefix_and_replication_override() -> None:
    topology = parse_topology(
        MINIMAL.replace("version: 1", "version: 1\ndefaults:\n  partitions: 4")
    )
    [topic] = desired_topics(topology, prefix="tenant.", replication_factor=3)
    assert topic.name == "tenant.orders"
    assert topic.partitions == 4
    assert topic.replication_factor == 3
    assert topic.configs == {"cleanup.policy": "delete", "retention.ms": "604800000"}


def _existing(**overrides: object) -> dict[str, ExistingTopic]:
    fields: dict = {
        "name": "orders",
        "partitions": 1,
        "replication_factor": 1,
        "configs": {"cleanup.policy": "delete", "retention.ms": "604800000"},
    }
    fields.update(overrides)
    return {"orders": ExistingTopic(**fields)}


def _desired(text: str = MINIMAL):  # type: ignore[no-untyped-def]
    return desired_topics(parse_topology(text))


def test_missing_topic_is_created() -> None:
    plan = plan_changes(_desired(), {})
    assert [type(c) for c in plan.changes] == [CreateTopic]
    assert "+ create orders (partitions=1" in plan.describe()


def test_matching_topic_needs_no_change() -> None:
    plan = plan_changes(_desired(), _existing())
    assert plan.empty
    assert plan.describe() == "no changes"


def test_config_drift_is_aligned() -> None:
    plan = plan_changes(
        _desired(), _existing(configs={"cleanup.policy": "delete", "retention.ms": "1000"})
    )
    assert plan.changes == [AlterConfig("orders", "retention.ms", "1000", "604800000")]


def test_partitions_grow_but_never_shrink() -> None:
    grown = plan_changes(_desired(MINIMAL + "    partitions: 3\n"), _existing())
    assert grown.changes == [AddPartitions("orders", 1, 3)]
    shrunk = plan_changes(_desired(), _existing(partitions=3))
    assert shrunk.changes == []
    assert "cannot remove partitions" in shrunk.refusals[0]


def test_a_compacted_topic_never_gains_partitions() -> None:
    """Found by a new user: `_schemas` declared with 2 partitions was planned (`diff` exit
    0) and applied, and the registry then refused to start on it for good (Kafka cannot
    remove partitions). Compaction keeps a key's newest value per partition: with more
    partitions a key's next value lands beside, not over, its old one, so every reader
    rebuilding state from the topic (`model.state`, `experiments`) may end on either."""
    text = MINIMAL.replace("cleanup_policy: delete", "cleanup_policy: compact") + (
        "    partitions: 2\n"
    )
    compacted = {"cleanup.policy": "compact", "retention.ms": "604800000"}
    plan = plan_changes(_desired(text), _existing(configs=compacted))
    assert plan.changes == []
    assert plan.refusals == [
        "orders is compacted (state topic) and has 1 partition(s), declared 2: a key's next "
        "value would land in another partition than its old one, which compaction then "
        "never removes, so readers rebuilding its state could end on either; move its "
        "state to a new topic instead (or grow it by hand if you really mean it)"
    ]
    # A table's changelog (compacted, declared by a worker, not the topology) follows its
    # source topic's partitions.
    changelog = replace(_desired(text)[0], compacted_state=False)
    assert plan_changes([changelog], _existing(configs=compacted)).changes == [
        AddPartitions("orders", 1, 2)
    ]


def test_compacted_state_topic_is_never_switched_to_delete() -> None:
    plan = plan_changes(
        _desired(), _existing(configs={"cleanup.policy": "compact", "retention.ms": "604800000"})
    )
    assert plan.changes == []
    assert "compacted (state topic)" in plan.refusals[0]


def test_a_compacted_state_topic_never_gains_a_retention_either() -> None:
    """Found by a new user: `model.state` declared `compact,delete` with a retention of an
    hour was planned and applied (only the word `compact` was looked for): the broker
    then deletes the segments past the retention, the only copy of state with them."""
    text = MINIMAL.replace("cleanup_policy: delete", "cleanup_policy: compact,delete")
    plan = plan_changes(
        _desired(text), _existing(configs={"cleanup.policy": "compact", "retention.ms": "-1"})
    )
    assert [c for c in plan.changes if getattr(c, "key", "") == "cleanup.policy"] == []
    assert "compacted (state topic)" in plan.refusals[0]
    assert "compact,delete" in plan.refusals[0]


def test_values_the_broker_normalises_are_the_same_value() -> None:
    """Found by a new user: `preallocate: "TRUE"`, `min.compaction.lag.ms: "060000"` and a
    trailing space were compared with the broker's `true`, `60000` and the trimmed text as
    they were written: apply altered them, waited 30 s for a cluster that reports the
    normalised values, failed, and every later apply did the same."""
    text = MINIMAL + (
        "    configs:\n"
        '      preallocate: "TRUE"\n'
        '      min.compaction.lag.ms: "060000"\n'
        '      message.timestamp.type: "LogAppendTime "\n'
        '      min.cleanable.dirty.ratio: "0.50"\n'
    )
    broker_says = {
        "cleanup.policy": "delete",
        "retention.ms": "604800000",
        "preallocate": "true",
        "min.compaction.lag.ms": "60000",
        "message.timestamp.type": "LogAppendTime",
        "min.cleanable.dirty.ratio": "0.5",
    }
    assert plan_changes(_desired(text), _existing(configs=broker_says)).empty
    other = {**broker_says, "preallocate": "false"}
    differs = plan_changes(_desired(text), _existing(configs=other))
    assert [getattr(c, "key", None) for c in differs.changes] == ["preallocate"]


def test_compact_delete_order_does_not_matter() -> None:
    text = MINIMAL.replace("cleanup_policy: delete", "cleanup_policy: compact,delete")
    plan = plan_changes(
        _desired(text),
        _existing(configs={"cleanup.policy": "delete,compact", "retention.ms": "604800000"}),
    )
    assert plan.empty


def test_replication_change_is_refused() -> None:
    plan = plan_changes(_desired(), _existing(replication_factor=3))
    assert "partition reassignment" in plan.refusals[0]
