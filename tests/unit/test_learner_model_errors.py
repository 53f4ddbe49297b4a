"""A spec whose pipeline fails on some examples (River's ``compose.Select("price")`` on an
input without ``price``, a step that raises in ``learn_one``, a score that is NaN) does not
stop the learner: the example is not learned, it goes to ``events.rejected`` with reason
``model_error`` and the exception in its detail, it is counted, and every other example and
every other model of the partition learns on. Before, the exception left the learner step:
the agent stopped at that record, and again at every restart (it is read again from the
snapshot's offsets), so no model of the partition learned anything after it."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pytest
from prometheus_client import generate_latest
from river import compose, linear_model, optim, preprocessing

from streamlearn.agents.learner import make_learner
from streamlearn.models import SPECS, ModelSpec
from streamlearn.models.checks import check_spec
from streamlearn.models.exceptions import ContractViolation
from streamlearn.models.inputs import ModelInput, model_input
from streamlearn.models.online import OnlineLearner
from streamlearn.models.safe_pickle import dumps
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import InMemoryRegistry
from streamlearn.simulate.learning_lab import learning_settings
from streamlearn.topology.catalogue import TopicCatalogue
from tests.unit.test_learning import KEY, T0, TOPIC, examples


def _price_only(seed: int) -> Any:
    return (
        compose.Select("price")
        | preprocessing.StandardScaler()
        | linear_model.LogisticRegression(optimizer=optim.SGD(0.05))
    )


PICKY = replace(
    SPECS["ctr"],
    name="picky",
    estimator="Select(price) | StandardScaler | LogisticRegression(SGD(0.05))",
    build=_price_only,
)
"""The docs' warning made real: ``Select`` raises ``KeyError: 'price'`` without a price."""


@dataclass(frozen=True)
class _FailsToLearn(ModelSpec):
    """A spec whose ``learn_one`` raises on an hour of 13 (a custom step's division by 0)."""

    def learn(self, model: Any, x: ModelInput, label: float, weight: float = 1.0) -> None:
        if x.get("hour") == 13.0:
            raise ZeroDivisionError("float division by zero")
        super().learn(model, x, label, weight)


@dataclass(frozen=True)
class _ScoresNaN(ModelSpec):
    """A spec whose score is NaN on an hour of 13 (a log of 0 somewhere)."""

    def predict(self, model: Any, x: ModelInput) -> float:
        return math.nan if x.get("hour") == 13.0 else super().predict(model, x)


def _like_ctr(kind: type[ModelSpec]) -> ModelSpec:
    """``ctr``'s spec as an instance of ``kind``."""
    ctr = SPECS["ctr"]
    return kind(**{name: getattr(ctr, name) for name in ctr.__dataclass_fields__})


def _picky_examples(n: int) -> tuple[list[dict[str, Any]], list[int]]:
    """``n`` examples of ``picky``, every tenth without a price; and those offsets."""
    records = examples(n, model_name="ctr", seed=4)
    without = []
    for i, record in enumerate(records):
        record["model_name"] = "picky"
        if i % 10 == 3:
            record["features"] = {k: v for k, v in record["features"].items() if k != "price"}
            without.append(i)
    return records, without


def _payload(spec: ModelSpec, records: list[dict[str, Any]]) -> bytes:
    model = spec.new_model(0)
    for record in records:
        spec.learn(model, model_input(record["features"]), record["label"])
    return dumps(model)


def test_an_example_the_pipeline_raises_on_is_not_learned_and_named() -> None:
    records, without = _picky_examples(100)
    learner = OnlineLearner(PICKY, signing_key=KEY)
    failures = {}
    for offset, record in enumerate(records):
        learned = learner.learn(record, TOPIC, 0, offset)
        assert learned == (learner.last_failure is None)
        if learner.last_failure is not None:
            failures[offset] = learner.last_failure
    assert sorted(failures) == without
    assert all("KeyError: 'price'" in failure for failure in failures.values())
    # What `replay model` says after its summary (it has no events.rejected to write to).
    assert learner.first_failure == f"{TOPIC}[0] offset 3: KeyError: 'price'"
    assert (learner.counters.learned, learner.counters.model_error) == (90, 10)
    kept = [r for i, r in enumerate(records) if i not in without]
    assert learner.snapshot(T0)["payload"] == _payload(PICKY, kept)


def test_an_example_learn_one_raises_on_is_counted_and_the_learner_goes_on() -> None:
    spec = _like_ctr(_FailsToLearn)
    records = examples(300, seed=2)
    failing = [i for i, r in enumerate(records) if r["features"].get("hour") == 13]
    assert failing
    learner = OnlineLearner(spec, signing_key=KEY)
    for offset, record in enumerate(records):
        learner.learn(record, TOPIC, 0, offset)
    assert learner.counters.model_error == len(failing)
    assert learner.counters.learned == len(records) - len(failing)
    # Not scored into the prequential figures either: they are over what was learned.
    assert learner.prequential.evaluated == learner.counters.learned


def test_a_non_finite_score_is_a_model_error_and_leaves_the_metrics_finite() -> None:
    spec = _like_ctr(_ScoresNaN)
    records = examples(300, seed=2)
    failing = [i for i, r in enumerate(records) if r["features"].get("hour") == 13]
    learner = OnlineLearner(spec, signing_key=KEY)
    for offset, record in enumerate(records):
        learner.learn(record, TOPIC, 0, offset)
    assert learner.counters.model_error == len(failing) > 0
    assert learner.last_failure is None or "non-finite score nan" in learner.last_failure
    assert all(math.isfinite(v) for v in learner.metrics().values())


def test_the_learner_agent_rejects_what_a_model_raises_on_and_the_partition_learns_on() -> None:
    """``picky`` and ``ctr`` share the partition: ``picky``'s KeyError stopped both."""
    settings = learning_settings(models=["ctr"])
    catalogue = TopicCatalogue.from_settings(settings)
    registry = InMemoryRegistry()
    cluster = LocalCluster(catalogue, registry, partitions=1)
    serde = catalogue.topic("training.examples").serde(registry)
    picky, without = _picky_examples(60)
    ctr = examples(60, seed=5)
    for record in [r for pair in zip(picky, ctr, strict=True) for r in pair]:
        record = {**record, "request_id": f"{record['model_name']}-{record['request_id']}"}
        cluster.produce("training.examples", record["request_id"].encode(), serde.encode(record),
                        partition=0)  # fmt: skip
    metrics = AgentMetrics()
    step = make_learner(
        cluster.environment(settings, metrics), {"picky": PICKY, "ctr": SPECS["ctr"]}
    )
    worker = LocalWorker(cluster, step, now_ms=1_000, metrics=metrics)
    worker.assign([0])
    worker.run(50)
    rejected = cluster.decoded("events.rejected")
    assert [r["key"] for r in rejected] == [f"picky-r{i}".encode() for i in without]
    for record in rejected:
        assert (record["reason"], record["agent"]) == ("model_error", "learner")
        assert record["detail"].startswith("picky: "), record["detail"]
        assert "KeyError: 'price'" in record["detail"]
    assert step.learners["ctr"].counters.learned == len(ctr)
    assert step.learners["picky"].counters.learned == len(picky) - len(without)
    exported = generate_latest(metrics.registry).decode()
    assert f'streamlearn_learner_picky_records_total{{what="model_error"}} {len(without)}.0' in (
        exported
    )


def test_a_replays_summary_names_the_examples_the_model_raised_on() -> None:
    """``replay model`` learns through the same OnlineLearner: its summary accounts for
    them too (they were left out of "N records read: ...")."""
    from streamlearn.models.online import LearnerCounters
    from streamlearn.replay.examples import ReadCounts
    from streamlearn.replay.model import records_read

    counts = ReadCounts()
    counts.read = 100
    line = records_read(counts, LearnerCounters(learned=90, model_error=10))
    assert line == (
        "100 records read: 90 learned, 10 the model failed on (raised, or scored non-finite)"
    )


def test_check_spec_names_the_spec_and_the_input_a_pipeline_raises_on() -> None:
    """docs/learning.md has users run ``check_spec`` on their spec before deploying it, and
    each check is said to raise ContractViolation naming the spec: ``picky`` got a bare
    ``KeyError: 'price'`` from inside River, naming neither the spec nor the input."""
    with pytest.raises(ContractViolation) as raised:
        check_spec(PICKY, n=600)
    message = str(raised.value)
    assert message.startswith("spec picky: ")
    assert "KeyError: 'price'" in message
    assert "{}" in message  # the input it raised on: the empty one
    assert isinstance(raised.value.__cause__, KeyError)


@dataclass(frozen=True)
class _RaisesWithItsInput(ModelSpec):
    """A spec whose step raises with a message holding a large input (a custom step's
    ``raise ValueError(f"bad input {x}")``)."""

    def predict(self, model: Any, x: ModelInput) -> float:
        raise ValueError(f"bad input {'x' * 100_000}")


def test_a_failures_detail_is_bounded() -> None:
    """Each failure's detail goes into an events.rejected record beside the example: a
    100 KB message made every rejection of the example 100 KB larger."""
    learner = OnlineLearner(_like_ctr(_RaisesWithItsInput), signing_key=KEY)
    assert not learner.learn(examples(1)[0], TOPIC, 0, 0)
    assert learner.last_failure is not None
    assert learner.last_failure.startswith("ValueError: bad input xxx")
    assert len(learner.last_failure) <= 1_000
    assert learner.last_failure.endswith("… (100,022 characters)")
