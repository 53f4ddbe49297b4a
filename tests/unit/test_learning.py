"""The online learner on its own: prequential quality, snapshots, exactly-once resume."""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from river import metrics as river_metrics

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS, model_input, with_context
from streamlearn.models.exceptions import BadSignature, ModelError
from streamlearn.models.online import OnlineLearner
from streamlearn.models.safe_pickle import dumps
from streamlearn.models.synthetic import ClickWorld, exact_auc
from streamlearn.serde import AvroSerde, InMemoryRegistry

KEY = b"learner-test-key"
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TOPIC = "training.examples"


def examples(
    n: int, *, seed: int = 0, model_name: str = "ctr", arm: str | None = None
) -> list[dict[str, Any]]:
    """``TrainingExample`` records from the synthetic world, labelled for ``model_name``."""
    task = SPECS[model_name].task
    records = []
    for i, request in enumerate(ClickWorld(seed).requests(n)):
        records.append(
            {
                "request_id": f"r{i}",
                "model_name": model_name,
                "model_version": 0,
                "arm": arm,
                "user_id": "u",
                "features": with_context(request.features, request.context),
                "label": float(request.clicked) if task == "binary" else request.value,
                "label_definition": SPECS[model_name].label.name,
                "score": 0.5,
                "served_ts": T0,
                "impression_ts": T0,
                "outcome_ts": None,
                "labelled_ts": T0,
                "weight": 1.0,
            }
        )
    return records


def positioned(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, int, int]]:
    """Records spread over two partitions in read order, with per-partition offsets."""
    next_offset = [100, 0]
    out = []
    for i, record in enumerate(records):
        partition = i % 2
        out.append((record, TOPIC, partition, next_offset[partition]))
        next_offset[partition] += 1
    return out


def in_process_payload(name: str, records: list[dict[str, Any]]) -> bytes:
    """The reference: plain River ``learn_one`` in order, no learner, no Kafka."""
    spec = SPECS[name]
    model = spec.new_model(0)
    for record in records:
        spec.learn(model, model_input(record["features"]), record["label"])
    return dumps(model)


@pytest.fixture(scope="module")
def registry() -> InMemoryRegistry:
    return InMemoryRegistry()


def _avro(registry: InMemoryRegistry, topic: str, name: str, record: dict[str, Any]) -> Any:
    serde = AvroSerde.for_topic(registry, topic, name)
    return serde.decode(serde.encode(record))


def test_ctr_prequential_auc_on_a_known_click_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    requests = ClickWorld(seed=11).requests(20_000)
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    scores = []
    truth = river_metrics.ROCAUC()  # type: ignore[no-untyped-call]
    for offset, request in enumerate(requests):
        record = {
            "model_name": "ctr",
            "features": with_context(request.features, request.context),
            "label": float(request.clicked),
        }
        scores.append(SPECS["ctr"].predict(learner.model, model_input(record["features"])))
        assert learner.learn(record, TOPIC, 0, offset)
        truth.update(request.clicked, request.p_click)
    learned = learner.metrics()
    clicks = [r.clicked for r in requests]
    exact = exact_auc(clicks, scores)
    ceiling = exact_auc(clicks, [r.p_click for r in requests])
    with capsys.disabled():
        print(
            f"\nctr prequential AUC on 20,000 examples: {learned['auc']:.4f} (River ROCAUC), "
            f"{exact:.4f} exact; true model (ceiling): {truth.get():.4f} (River ROCAUC), "
            f"{ceiling:.4f} exact; log loss {learned['log_loss']:.4f}"
        )
    assert learned["auc"] > 0.75
    assert exact > 0.75
    assert exact < ceiling
    assert learned["evaluated_examples"] == 20_000


@pytest.mark.parametrize(
    ("name", "total", "cut"),
    [("ctr", 1000, 600), ("conversion_value", 1000, 600), ("ctr_tree", 6000, 3600)],
)
def test_resume_is_exactly_once_and_byte_identical(
    registry: InMemoryRegistry, name: str, total: int, cut: int
) -> None:
    records = positioned(examples(total, seed=2, model_name=name))
    first = OnlineLearner(SPECS[name], signing_key=KEY)
    assert first.learn_many(records[:cut]) == cut
    snapshot = _avro(registry, "model.state", "ModelSnapshot", first.snapshot(T0))
    assert snapshot["offsets"] == [
        {"topic": TOPIC, "partition": 0, "offset": 100 + cut // 2},
        {"topic": TOPIC, "partition": 1, "offset": cut // 2},
    ]
    # "Killed" here. A fresh learner resumes and is fed everything again (the agent would
    # seek to the offsets; a redelivery from earlier must not be learned twice either).
    second = OnlineLearner(SPECS[name], signing_key=KEY)
    second.resume(snapshot)
    assert (second.version, second.trained_examples) == (1, cut)
    assert second.learn_many(records) == total - cut
    assert second.counters.replayed == cut
    once = OnlineLearner(SPECS[name], signing_key=KEY)
    once.learn_many(records)
    resumed_payload = second.snapshot(T0)["payload"]
    assert resumed_payload == once.snapshot(T0)["payload"]
    assert resumed_payload == in_process_payload(name, [r for r, *_ in records])


_FIRST_LIFE = """
import pickle, sys
from datetime import UTC, datetime
from streamlearn.models.online import OnlineLearner
from streamlearn.models import SPECS
from tests.unit.test_learning import KEY, examples, positioned
name, cut, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
learner = OnlineLearner(SPECS[name], signing_key=KEY)
learner.learn_many(positioned(examples(int(sys.argv[4]), seed=2, model_name=name))[:cut])
with open(path, "wb") as out:
    pickle.dump(learner.snapshot(datetime(2026, 11, 30, tzinfo=UTC)), out)
"""


@pytest.mark.slow
def test_resume_in_another_process_with_another_hash_seed(tmp_path: Path) -> None:
    """What a SIGKILL and restart looks like: the first life is another interpreter."""
    name, total, cut = "ctr_tree", 6000, 3600
    path = tmp_path / "snapshot.pickle"
    subprocess.run(
        [sys.executable, "-c", _FIRST_LIFE, name, str(cut), str(path), str(total)],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        cwd=Path(__file__).parents[2],
        check=True,
        timeout=120,
    )
    snapshot = pickle.loads(path.read_bytes())
    records = positioned(examples(total, seed=2, model_name=name))
    learner = OnlineLearner(SPECS[name], signing_key=KEY)
    learner.resume(snapshot)
    learner.learn_many(records)
    assert dumps(learner.model) == in_process_payload(name, [r for r, *_ in records])


def test_versions_parents_and_cadence() -> None:
    spec = SPECS["ctr"]
    learner = OnlineLearner(spec, signing_key=KEY, signing_key_id="k1")
    records = positioned(examples(spec.snapshot_every_examples + 5))
    assert not learner.snapshot_due(0.0)  # nothing learned yet; starts the clock
    learner.learn_many(records[:3])
    assert not learner.snapshot_due(spec.snapshot_every_s - 0.1)
    assert learner.snapshot_due(spec.snapshot_every_s)
    first = learner.snapshot(T0, now_s=spec.snapshot_every_s)
    assert (first["version"], first["parent_version"], first["trained_examples"]) == (1, None, 3)
    assert first["signing_key_id"] == "k1"
    assert not learner.snapshot_due(spec.snapshot_every_s * 10)  # nothing new since
    learner.learn_many(records[3 : 3 + spec.snapshot_every_examples])
    assert learner.snapshot_due(spec.snapshot_every_s + 0.1)  # by count, before the time
    second = learner.snapshot(T0 + timedelta(seconds=1), now_s=spec.snapshot_every_s + 0.1)
    assert (second["version"], second["parent_version"]) == (2, 1)
    resumed = OnlineLearner(spec, signing_key=KEY)
    resumed.resume(second)
    resumed.learn_many(records)
    third = resumed.snapshot(T0 + timedelta(seconds=2))
    assert (third["version"], third["parent_version"]) == (3, 2)
    assert third["trained_examples"] == len(records)
    assert learner.counters.snapshots == 2


def test_offsets_other_models_and_invalid_examples() -> None:
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    [ctr, other] = examples(1) + examples(1, model_name="ctr_tree")
    assert learner.learn(ctr, TOPIC, 3, 10)
    assert not learner.learn(ctr, TOPIC, 3, 10)  # redelivered
    assert not learner.learn(ctr, TOPIC, 3, 4)  # older still
    assert not learner.learn(other, TOPIC, 3, 11)  # consumed, not learned
    assert not learner.learn({**ctr, "request_id": "r-nan", "label": float("nan")}, TOPIC, 3, 12)
    assert not learner.learn({**ctr, "request_id": "r-w0", "weight": 0.0}, TOPIC, 3, 13)
    # A binary model's label is 0 or 1: 7.0 was learned as a click (found by a new user).
    assert not learner.learn({**ctr, "request_id": "r-7", "label": 7.0}, TOPIC, 3, 14)
    assert learner.learn(ctr, TOPIC, 4, 0)  # another partition has its own offsets
    assert learner.next_offsets == {(TOPIC, 3): 15, (TOPIC, 4): 1}
    counters = learner.counters
    assert (counters.learned, counters.replayed, counters.other_model, counters.invalid) == (
        2,
        2,
        1,
        3,
    )
    assert learner.trained_examples == 2


def test_weights_reach_the_model() -> None:
    spec = SPECS["ctr"]
    [record] = examples(1)
    weighted = OnlineLearner(spec, signing_key=KEY)
    weighted.learn({**record, "weight": 3.0}, TOPIC, 0, 0)
    plain = OnlineLearner(spec, signing_key=KEY)
    plain.learn(record, TOPIC, 0, 0)
    assert dumps(weighted.model) != dumps(plain.model)


def test_batching_does_not_matter() -> None:
    records = positioned(examples(500))
    whole = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    whole.learn_many(records)
    pieces = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    for start in range(0, 500, 37):
        pieces.learn_many(records[start : start + 37])
    assert dumps(pieces.model) == dumps(whole.model)
    assert pieces.metrics() == whole.metrics()


def test_a_learner_per_arm() -> None:
    spec = SPECS["ctr"]
    learner = OnlineLearner(spec, signing_key=KEY, arm="b")
    records = examples(10, arm="b") + examples(10, arm="a")
    assert learner.learn_many(positioned(records)) == 10
    snapshot = learner.snapshot(T0)
    assert snapshot["model_name"] == "ctr@b"
    with pytest.raises(ModelError, match="ctr@b cannot resume the learner of ctr"):
        OnlineLearner(spec, signing_key=KEY).resume(snapshot)


def test_a_bad_snapshot_leaves_the_learner_as_it_was() -> None:
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    learner.learn_many(positioned(examples(50)))
    before = dumps(learner.model)
    snapshot = learner.snapshot(T0)
    other = OnlineLearner(SPECS["ctr"], signing_key=b"another key")
    with pytest.raises(BadSignature):
        other.resume(snapshot)
    assert (other.version, other.trained_examples, other.next_offsets) == (0, 0, {})
    with pytest.raises(BadSignature):
        learner.resume({**snapshot, "trained_examples": 10**6})
    assert dumps(learner.model) == before
    assert learner.trained_examples == 50


def test_records_match_their_schemas(registry: InMemoryRegistry) -> None:
    learner = OnlineLearner(SPECS["conversion_value"], signing_key=KEY)
    for record in examples(20, model_name="conversion_value"):
        _avro(registry, TOPIC, "TrainingExample", record)
    learner.learn_many(positioned(examples(200, model_name="conversion_value")))
    # Fallback answers only (model_version 0): no served figures.
    assert set(learner.metrics()) == {"mae", "rmse", "evaluated_examples"}
    snapshot = learner.snapshot(T0)
    assert _avro(registry, "model.state", "ModelSnapshot", snapshot) == snapshot
    record = learner.metrics_record(T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=1))
    assert _avro(registry, "model.metrics", "ModelMetrics", record) == record
    assert (record["source"], record["model_version"], record["example_count"]) == (
        "learner",
        1,
        200,
    )


def test_a_signing_key_is_required() -> None:
    with pytest.raises(ConfigurationError):
        OnlineLearner(SPECS["ctr"], signing_key=None)


def test_served_metrics_score_what_users_got_and_leave_fallbacks_out() -> None:
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    records = examples(400)
    for n, record in enumerate(records):
        if n % 4 == 0:  # a fallback answered: no model version, a score that ranks badly
            record.update(model_version=None, score=1.0 - record["label"])
        elif n < 200:  # version 1 ranks perfectly, but scores everything high...
            record.update(model_version=1, score=0.8 + 0.1 * record["label"])
        else:  # ...and version 2 too, scoring everything low: pooled, that would rank badly
            record.update(model_version=2, score=0.1 + 0.1 * record["label"])
    learner.learn_many(positioned(records))
    metrics = learner.metrics()
    assert metrics["served_examples"] == 300
    assert metrics["served_auc"] == pytest.approx(1.0)
    assert metrics["evaluated_examples"] == 400
    assert metrics["auc"] < 0.99  # the model being trained is no oracle


def test_no_prequential_auc_until_both_classes_were_evaluated() -> None:
    # Under as_labelled, positives reach a fresh (or resumed) learner first: River's figure
    # over them alone is 0.0, which a chart drew as a model gone wrong. No figure is right.
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    records = examples(2000)
    positives = [record for record in records if record["label"] == 1.0]
    negatives = [record for record in records if record["label"] == 0.0]
    learner.learn_many(positioned(positives[:50]))
    metrics = learner.metrics()
    assert metrics["evaluated_examples"] == 50
    assert "auc" not in metrics
    assert metrics["log_loss"] > 0  # defined from the first example
    learner.learn_many([(record, TOPIC, 2, offset) for offset, record in enumerate(negatives[:1])])
    assert 0.0 <= learner.metrics()["auc"] <= 1.0


def test_on_scored_gets_the_served_time_in_epoch_ms_however_the_example_was_decoded() -> None:
    records = examples(6)
    served_ms = int(T0.timestamp() * 1000)
    for n, record in enumerate(records):
        record["served_ts"] = served_ms + n if n % 2 else T0 + timedelta(milliseconds=n)
    records[5]["served_ts"] = None
    seen: list[tuple[int | None, float]] = []
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    learner.on_scored = lambda at_ms, label, score, weight: seen.append((at_ms, label))
    for offset, record in enumerate(records):
        learner.learn(record, "training.examples", 0, offset)
    expected = [served_ms + n for n in range(5)] + [None]
    assert seen == [(at, r["label"]) for at, r in zip(expected, records, strict=True)]


def test_fake_negative_learners_weight_by_their_own_score_and_stay_deterministic() -> None:
    spec = SPECS["ctr"]
    fake = replace(spec, label=replace(spec.label, strategy="fake_negative"))
    records = examples(300, seed=4)
    seen: list[tuple[float, float, float]] = []
    learner = OnlineLearner(fake, signing_key=KEY)
    learner.on_scored = lambda served_ms, label, score, weight: seen.append((label, score, weight))
    learner.learn_many(positioned(records))
    assert len(seen) == 300
    for label, score, weight in seen:
        assert weight == pytest.approx((1 + score) if label else (1 - score) * (1 + score))
    again = OnlineLearner(fake, signing_key=KEY)
    again.learn_many(positioned(records))
    assert again.snapshot(T0)["payload"] == learner.snapshot(T0)["payload"]
    plain = OnlineLearner(spec, signing_key=KEY)
    plain.learn_many(positioned(records))
    assert plain.snapshot(T0)["payload"] != learner.snapshot(T0)["payload"]


def _gated(margin: float = 0.0, window: int = 200) -> OnlineLearner:
    spec = replace(SPECS["ctr"], promotion_margin=margin, promotion_window=window)
    return OnlineLearner(spec, signing_key=KEY)


def test_the_promotion_gate_holds_back_a_version_worse_on_the_last_examples() -> None:
    records = examples(3000, seed=5)
    # A burst of wrong labels (all positive) makes the trainee over-confident; the last
    # 200 honest examples judge it against the promoted version, which never learned them.
    records[2000:2800] = [{**r, "label": 1.0} for r in records[2000:2800]]
    stream = positioned(records)
    learner = _gated()
    learner.learn_many(stream[:2000])
    first = learner.snapshot(T0)["metrics"]
    assert first["promoted"] == 1.0  # nothing to compare with: the first is promoted
    learner.learn_many(stream[2000:])
    assert learner.counters.learned == 3000
    held = learner.snapshot(T0)["metrics"]
    assert held["promoted"] == 0.0
    assert held["gate_log_loss"] > held["gate_promoted_log_loss"]


def test_the_promotion_gate_promotes_a_version_as_good_and_leaves_payloads_alone() -> None:
    stream = positioned(examples(2600, seed=6))
    learner, plain = _gated(margin=0.01), OnlineLearner(SPECS["ctr"], signing_key=KEY)
    for chunk in (stream[:2000], stream[2000:]):
        learner.learn_many(chunk)
        plain.learn_many(chunk)
        gated_snapshot, plain_snapshot = learner.snapshot(T0), plain.snapshot(T0)
        assert gated_snapshot["metrics"]["promoted"] == 1.0
        assert gated_snapshot["payload"] == plain_snapshot["payload"]
    assert learner.counters.learned == 2600
    assert "gate_log_loss" in gated_snapshot["metrics"]  # v2 was judged, and passed
    assert "promoted" not in plain_snapshot["metrics"]


def test_a_promotion_gate_needs_a_binary_spec_and_a_margin() -> None:
    with pytest.raises(ConfigurationError):
        replace(SPECS["conversion_value"], promotion_margin=0.01)
    with pytest.raises(ConfigurationError):
        replace(SPECS["ctr"], promotion_margin=-0.1)


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"promotion_margin": math.nan}, "promotion_margin nan"),
        ({"promotion_margin": math.inf}, "promotion_margin inf"),
        ({"promotion_margin": -0.1}, "promotion_margin -0.1"),
        ({"promotion_margin": 0.0, "promotion_window": 0}, "promotion_window 0"),
        ({"promotion_margin": 0.0, "promotion_after_examples": -3}, "promotion_after_examples -3"),
        ({"promotion_margin": 0.0, "promotion_judge": "candidate",
          "promotion_auc_margin": math.nan}, "promotion_auc_margin nan"),
    ],
)  # fmt: skip
def test_a_spec_says_which_of_its_gate_values_is_wrong(changed: dict[str, Any], named: str) -> None:
    """Found by a new user: a NaN margin was taken (every comparison with it is false, so
    the gate held back every version after the first: served AUC 0.58), and each wrong
    value got one message listing every rule."""
    with pytest.raises(ConfigurationError, match=named):
        replace(SPECS["ctr"], **changed)
