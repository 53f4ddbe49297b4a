"""Examples the models cannot learn from are refused, said in ``events.rejected`` with the
reason, and the learner goes on: a served prediction's features become an example, and
before this, one with ``hour`` 1e308 made the learner's ``learn`` raise (the cyclic
transform's angle is infinite: a record that would stop the agent at every restart), and
one with ``price`` 1e300 overflowed ``ctr_tree``'s Gaussian statistics for good."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest

from streamlearn.agents.learner import make_learner
from streamlearn.models import SPECS
from streamlearn.models.exceptions import SnapshotTooLarge
from streamlearn.models.features import model_input
from streamlearn.models.online import OnlineLearner
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import InMemoryRegistry
from streamlearn.simulate.learning_lab import learning_settings
from streamlearn.topology.catalogue import TopicCatalogue
from tests.unit.test_learning import KEY, T0, TOPIC, examples, in_process_payload

BAD_FEATURES = [
    ("hour", 1e308, "features.hour"),
    ("price", 1e300, "features.price"),
    ("recency_s", -1e19, "features.recency_s"),
    ("price", float(2**64), "features.price"),
]


def _with_bad_ones(name: str, n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``n`` good examples of ``name`` with the bad ones among them, and the good ones."""
    good = examples(n, model_name=name, seed=4)
    mixed = list(good)
    for i, (feature, value, _field) in enumerate(BAD_FEATURES):
        bad = {**good[10 * i], "request_id": f"bad-{i}"}
        bad["features"] = {**bad["features"], feature: value}
        mixed.insert(10 * i + 5, bad)
    return mixed, good


@pytest.mark.parametrize("name", ["ctr", "ctr_tree"])
def test_numbers_beyond_a_64_bit_integer_are_not_learned(name: str) -> None:
    mixed, good = _with_bad_ones(name, 200)
    learner = OnlineLearner(SPECS[name], signing_key=KEY)
    problems = []
    for offset, record in enumerate(mixed):
        learned = learner.learn(record, TOPIC, 0, offset)
        problems.append(learner.last_invalid)
        assert learned == (learner.last_invalid is None)
    named = [p for p in problems if p is not None]
    assert len(named) == len(BAD_FEATURES)
    for problem, (_feature, _value, field) in zip(named, BAD_FEATURES, strict=True):
        assert problem.startswith(field), problem
        assert "2^63" in problem
    assert (learner.counters.learned, learner.counters.invalid) == (200, len(BAD_FEATURES))
    # Exactly the model of the good examples: nothing of the bad ones was learned.
    assert learner.snapshot(T0)["payload"] == in_process_payload(name, good)


def test_a_label_or_weight_that_cannot_be_learned_is_named() -> None:
    [record] = examples(1)
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    for offset, (change, field) in enumerate(
        [({"label": 7.0}, "label"), ({"label": float("nan")}, "label"),
         ({"weight": 0.0}, "weight"), ({"weight": float("inf")}, "weight")]
    ):  # fmt: skip
        changed = {**record, "request_id": f"r-{offset}", **change}
        assert not learner.learn(changed, TOPIC, 0, offset)
        assert learner.last_invalid is not None
        assert learner.last_invalid.startswith(field)
    assert learner.learn(record, TOPIC, 0, 9)
    assert learner.last_invalid is None


def test_a_value_beyond_what_the_model_may_serve_is_learned_as_its_bound() -> None:
    """One ``value`` feedback of 1e15 (the collector takes any double) made
    ``conversion_value``'s prediction 12,130,682,426 for everybody, and 22,319,264 still
    after 5,000 normal examples (a probe). Its rules clamp what it serves to [0, 10000]:
    a label outside that is learned as the nearest bound (a real total past it, or a
    refund, still counts) and counted."""
    name = "conversion_value"
    good = examples(300, model_name=name, seed=5)
    learner = OnlineLearner(SPECS[name], signing_key=KEY)
    outside = [
        {**good[0], "request_id": f"big-{n}", "label": label}
        for n, label in enumerate((1e15, -3.0, 10_000.5))
    ]
    for offset, record in enumerate([*good[:150], *outside, *good[150:]]):
        assert learner.learn(record, TOPIC, 0, offset)
    assert (learner.counters.clipped, learner.counters.invalid) == (3, 0)
    clipped = [{**r, "label": min(max(r["label"], 0.0), 10_000.0)} for r in outside]
    expected = in_process_payload(name, [*good[:150], *clipped, *good[150:]])
    assert learner.snapshot(T0)["payload"] == expected
    spec = SPECS[name]
    score = spec.predict(learner.model, model_input(good[1]["features"]))
    assert 0.0 <= score < 10_000.0


def test_the_learner_agent_sends_what_it_cannot_learn_to_events_rejected_and_goes_on() -> None:
    settings = learning_settings(models=["ctr_tree"])
    catalogue = TopicCatalogue.from_settings(settings)
    registry = InMemoryRegistry()
    cluster = LocalCluster(catalogue, registry, partitions=1)
    serde = catalogue.topic("training.examples").serde(registry)
    mixed, good = _with_bad_ones("ctr_tree", 120)
    for record in mixed:
        cluster.produce("training.examples", record["request_id"].encode(), serde.encode(record),
                        partition=0)  # fmt: skip
    metrics = AgentMetrics()
    step = make_learner(cluster.environment(settings, metrics))
    worker = LocalWorker(cluster, step, now_ms=1_000, metrics=metrics)
    worker.assign([0])
    worker.run(50)
    rejected = cluster.decoded("events.rejected")
    assert [r["key"] for r in rejected] == [f"bad-{i}".encode() for i in range(len(BAD_FEATURES))]
    for record, (_feature, _value, field) in zip(rejected, BAD_FEATURES, strict=True):
        assert (record["reason"], record["agent"]) == ("invalid_example", "learner")
        assert record["detail"].startswith(f"ctr_tree: {field}")
        assert record["source_topic"] == "training.examples"
        # The bytes as read: the example can be mended and sent again.
        assert serde.decode(record["value"])["request_id"] == record["key"].decode()
    learner = step.learners["ctr_tree"]
    assert learner.counters.learned == len(good)
    worker.now_ms += 60_000
    worker.tick()
    [snapshot] = cluster.decoded("model.state")
    assert bytes(snapshot["payload"]) == in_process_payload("ctr_tree", good)


def test_a_snapshot_too_large_for_model_state_is_not_published_and_the_learner_goes_on() -> None:
    """A model grown past model.state's message limit (made-up feature names, found by a
    probe) failed at the broker, and the learner crashed at that snapshot again after
    every restart: no model learned on."""
    settings = learning_settings(models=["ctr"])
    catalogue = TopicCatalogue.from_settings(settings)
    registry = InMemoryRegistry()
    cluster = LocalCluster(catalogue, registry, partitions=1)
    serde = catalogue.topic("training.examples").serde(registry)

    def produce(records: list[dict[str, Any]]) -> None:
        for record in records:
            key = record["request_id"].encode()
            cluster.produce("training.examples", key, serde.encode(record), partition=0)

    first, later = examples(300, seed=5), examples(300, seed=6)
    for i, record in enumerate(later):
        record["request_id"] = f"later-{i}"
    produce(first)
    metrics = AgentMetrics()
    step = make_learner(cluster.environment(settings, metrics))
    learner = step.learners["ctr"]
    assert learner.max_payload_bytes == 16 * 1024 * 1024 - 64 * 1024  # the topic's, less room
    learner.max_payload_bytes = 1000  # ctr's payload is ~3 KB
    worker = LocalWorker(cluster, step, now_ms=1_000, metrics=metrics)
    worker.assign([0])
    worker.run(50)
    for _ in range(3):
        worker.now_ms += 60_000
        worker.tick()
    assert cluster.decoded("model.state") == []
    [alert] = cluster.decoded("monitoring.alerts")  # once, not at every try
    assert (alert["kind"], alert["severity"], alert["model_name"]) == (
        "snapshot_too_large", "critical", "ctr")  # fmt: skip
    assert alert["threshold"] == 1000
    assert alert["value"] > 1000
    assert learner.counters.learned == 300
    # Tried once: not again until there is something new to publish.
    text = generate_latest(metrics.registry).decode()
    counted = 'streamlearn_learner_unpublished_snapshots_total{model="ctr",reason="too_large"}'
    assert f"{counted} 1.0" in text
    # It learns on, and publishes once a snapshot fits: version 1, no lost parent.
    learner.max_payload_bytes = None
    produce(later)
    worker.run(50)
    worker.now_ms += 60_000
    worker.tick()
    published = cluster.decoded("model.state")
    assert [(s["version"], s["parent_version"]) for s in published][:2] == [(1, None), (2, 1)][
        : len(published)
    ]
    assert published[-1]["trained_examples"] == 600
    assert bytes(published[-1]["payload"]) == in_process_payload("ctr", first + later)


def test_a_candidate_too_large_is_dropped_not_judged_for_good() -> None:
    """With the candidate gate, a too-large candidate stayed pending: every example was
    scored by it and its loss kept (2,800 after 2,700 examples), and every cadence failed
    on it again."""
    from dataclasses import replace

    from streamlearn.models.promotion import CandidateGate

    spec = replace(SPECS["ctr"], promotion_margin=0.0, promotion_window=100,
                   promotion_judge="candidate")  # fmt: skip
    learner = OnlineLearner(spec, signing_key=KEY)
    records = examples(3000, seed=7)
    learner.learn_many((r, TOPIC, 0, i) for i, r in enumerate(records[:200]))
    assert learner.snapshot(T0, 0.0) is not None  # the first version, promoted at once
    learner.learn_many((r, TOPIC, 0, 200 + i) for i, r in enumerate(records[200:300]))
    assert learner.snapshot(T0, 1.0) is None  # a candidate cut
    learner.max_payload_bytes = 1000
    failures = 0
    for start in range(300, 3000, 100):
        learner.learn_many((r, TOPIC, 0, start + i)
                           for i, r in enumerate(records[start:start + 100]))  # fmt: skip
        try:
            learner.snapshot(T0, float(start))
        except SnapshotTooLarge:
            failures += 1
    gate = learner.gate
    assert isinstance(gate, CandidateGate)
    assert len(gate._losses) <= 100
    assert failures <= 14  # about every other window: a cut, then its verdict


def test_a_warm_start_too_large_is_not_pickled_again_at_every_batch() -> None:
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    learner.warm_from = "ctr@history v1"  # as warm_start leaves it
    learner.max_payload_bytes = 100
    assert learner.snapshot_due(0.0)
    with pytest.raises(SnapshotTooLarge):
        learner.snapshot(T0, 0.0)
    assert not learner.snapshot_due(1.0)  # nothing new: not due again


def test_records_that_do_not_decode_count_as_read_for_where_the_learner_resumes() -> None:
    """The runtime rejects a record that does not decode before the learner sees it. The
    learner's ``resume_offset`` stayed at the first of them, and a worker seeks back to it
    before any batch that starts later: every such record was rejected twice, and a run
    of them longer than one fetch was read again forever (a probe: 8,000 records of 1 KB
    of garbage on ctr's partition, 323,000 rejections in 30 s, ctr learned nothing more)."""
    settings = learning_settings(models=["ctr"])
    catalogue = TopicCatalogue.from_settings(settings)
    registry = InMemoryRegistry()
    cluster = LocalCluster(catalogue, registry, partitions=1)
    serde = catalogue.topic("training.examples").serde(registry)
    good = examples(30, seed=7)
    for record in good:
        cluster.produce("training.examples", record["request_id"].encode(), serde.encode(record),
                        partition=0)  # fmt: skip
    for n in range(40):  # after the last example: nothing the learner takes in comes after
        cluster.produce("training.examples", b"ctr", b"garbage %d" % n, partition=0)
    metrics = AgentMetrics()
    step = make_learner(cluster.environment(settings, metrics))
    worker = LocalWorker(cluster, step, now_ms=1_000, metrics=metrics)
    worker.assign([0])
    worker.run(25)
    assert len(cluster.decoded("events.rejected")) == 40
    assert step.learners["ctr"].counters.learned == len(good)
    # Read through the garbage: a worker has nothing to seek back to.
    assert step.resume_offset("training.examples", 0) == len(good) + 40
