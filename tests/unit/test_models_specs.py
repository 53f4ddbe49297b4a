"""Model specs: declarations, feature extraction, and the contract checks over every spec."""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import replace
from typing import Any

import pytest
from river import linear_model, preprocessing

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import (
    SPECS,
    BusinessRules,
    LabelDefinition,
    ModelSpec,
    UnknownModelSpec,
    get_spec,
    model_input,
    safe_pickle,
    with_context,
)
from streamlearn.models.checks import CHECKS, check_input_not_mutated, training_stream
from streamlearn.models.exceptions import ContractViolation, ModelError
from streamlearn.models.features import FeatureEncoder
from streamlearn.models.synthetic import ClickWorld


def test_shipped_specs() -> None:
    assert {"ctr", "ctr_tree", "conversion_value"} <= set(SPECS)
    assert get_spec("ctr").task == "binary"
    assert get_spec("ctr_tree").label.name == "click_within_30m"
    value = get_spec("conversion_value")
    assert value.task == "regression"
    assert value.label.value_kinds == ("conversion", "value")
    for name, spec in SPECS.items():
        assert spec.name == name
        assert spec.snapshot_every_examples >= 1
        assert spec.snapshot_every_s > 0


def test_unknown_spec_is_a_typed_error() -> None:
    with pytest.raises(UnknownModelSpec) as caught:
        get_spec("nope")
    assert isinstance(caught.value, ModelError)
    assert isinstance(caught.value, LookupError)
    assert "ctr_tree" in str(caught.value)


def test_label_definitions_are_validated() -> None:
    label = LabelDefinition("click_within_30m", horizon_s=1800, positive_kinds=("click",))
    assert (label.task, label.horizon_ms) == ("binary", 1_800_000)
    with pytest.raises(ConfigurationError):
        LabelDefinition("x", horizon_s=0, positive_kinds=("click",))
    with pytest.raises(ConfigurationError):
        LabelDefinition("x", horizon_s=1, positive_kinds=("click",), value_kinds=("value",))
    with pytest.raises(ConfigurationError):
        LabelDefinition("x", horizon_s=1)


def test_spec_task_must_match_its_label() -> None:
    ctr = get_spec("ctr")
    with pytest.raises(ConfigurationError):
        ModelSpec("bad", "regression", "x", ctr.build, ctr.label)
    with pytest.raises(ConfigurationError):
        ModelSpec("bad", "binary", "x", ctr.build, ctr.label, snapshot_every_examples=0)


def test_business_rules() -> None:
    rules = BusinessRules(clamp_min=0.1, clamp_max=0.9)
    assert (rules.clamp(-3.0), rules.clamp(0.5), rules.clamp(7.0)) == (0.1, 0.5, 0.9)
    with pytest.raises(ConfigurationError):
        BusinessRules(clamp_min=1.0, clamp_max=0.0)
    ctr = get_spec("ctr").rules
    assert ctr.threshold is not None
    assert ctr.positive_cap_per_window is not None
    assert ctr.fallback_decision == "skip"


def test_description_is_canonical_and_complete() -> None:
    spec = get_spec("ctr")
    text = spec.describe()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    described = json.loads(text)
    assert described["name"] == "ctr"
    assert described["label"]["horizon_s"] == 1800
    revised = ModelSpec(
        spec.name, spec.task, spec.estimator, spec.build, spec.label, revision=spec.revision + 1
    )
    assert revised.describe() != text
    # Serving rules and cadence do not change what a payload means.
    retuned = ModelSpec(
        spec.name,
        spec.task,
        spec.estimator,
        spec.build,
        spec.label,
        revision=spec.revision,
        snapshot_every_s=99,
    )
    assert retuned.describe() == text


def test_model_input() -> None:
    features: dict[str, Any] = {
        "z": 3,
        "a": True,
        "m": "books",
        "n": None,
        "nan": math.nan,
        "inf": -math.inf,
        "f": 2.5,
        "off": False,
    }
    original = copy.deepcopy(features)
    x = model_input(features, {"placement": "top"})
    assert list(x) == ["a", "ctx.placement", "f", "m", "off", "z"]
    assert x == {"a": 1.0, "ctx.placement": "top", "f": 2.5, "m": "books", "off": 0.0, "z": 3.0}
    assert all(type(v) in (float, str) for v in x.values())
    assert features == original
    # Context folded into the features (what a TrainingExample carries) reads the same.
    assert model_input(with_context(features, {"placement": "top"})) == x


class _Text(str):
    """A subclass of a JSON type: model_input decides what it is."""


@pytest.mark.parametrize(
    ("features", "context"),
    [
        ({"z": 3, "a": True, "m": "books", "n": None, "nan": math.nan, "f": 2.5}, None),
        ({"price": 1.5, "hour": 7}, {"placement": "top", "device": "mobile"}),
        # A feature named like a folded context key: the context's value wins.
        ({"ctx.device": 4.5, "ctx.placement": None, "x": -math.inf}, {"device": "mobile"}),
        ({"ctx.device": "tablet"}, {"device": "mobile", "placement": "top"}),
        # Context values that are not strings (not a validated request): model_input's rules.
        ({"ctx.a": 1.5, "b": 2.0}, {"a": None}),  # type: ignore[dict-item]
        ({"b": 2.0}, {"a": 3, "c": True, "d": math.nan}),  # type: ignore[dict-item]
        ({}, {}),
    ],
)
def test_unsorted_model_input_has_model_inputs_items(
    features: dict[str, Any], context: dict[str, str] | None
) -> None:
    from streamlearn.models.inputs import unsorted_model_input

    unsorted = unsorted_model_input(features, context)
    assert unsorted is not None
    assert {k: unsorted[k] for k in sorted(unsorted)} == model_input(features, context)
    assert list(model_input(features, context)) == sorted(unsorted)


def test_unsorted_model_input_leaves_subclasses_to_model_input() -> None:
    from streamlearn.models.inputs import unsorted_model_input

    assert unsorted_model_input({"m": _Text("books")}, {}) is None
    assert unsorted_model_input({"m": 1.0}, {"c": _Text("top")}) is None


def test_feature_encoder_matches_river_standard_scaler() -> None:
    encoder, scaler = FeatureEncoder(), preprocessing.StandardScaler()
    for value in (1.0, 4.0, 2.0, 8.0, 5.0):
        encoder.learn_one({"v": value, "c": "a"})
        scaler.learn_one({"v": value})
    ours = encoder.transform_one({"v": 3.0, "c": "b", "new": 1.0})
    assert ours["v"] == pytest.approx(scaler.transform_one({"v": 3.0})["v"])
    assert ours["c=b"] == 1.0
    assert ours["new"] == 0.0  # a number never learned sits at the mean


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_contract(name: str, check: Any) -> None:
    spec = SPECS[name]
    check(spec, training_stream(spec, 5000))


def test_a_broken_spec_fails_the_checks() -> None:
    class Mutating(FeatureEncoder):
        def learn_one(self, x: dict[Any, Any]) -> None:
            x.pop(next(iter(x)), None)
            super().learn_one(x)

    ctr = get_spec("ctr")
    broken = ModelSpec(
        "broken",
        "binary",
        "x",
        lambda seed: Mutating() | linear_model.LogisticRegression(),
        ctr.label,
    )
    with pytest.raises(ContractViolation, match=r"spec broken: .*changed its input"):
        check_input_not_mutated(broken, training_stream(ctr, 50))


def test_measurements(capsys: pytest.CaptureFixture[str]) -> None:
    """Learning cost and payload size per spec (printed; only sizes are asserted, timings
    on a shared 2-core machine are not)."""
    requests = ClickWorld(seed=5).requests(20_000)
    rows = []
    for name, spec in sorted(SPECS.items()):
        xs = [model_input(r.features, r.context) for r in requests]
        labels = [float(r.clicked) if spec.task == "binary" else r.value for r in requests]
        model = spec.new_model()
        started = time.perf_counter()
        for x, label in zip(xs, labels, strict=True):
            spec.learn(model, x, label)
        learn_us = (time.perf_counter() - started) / len(xs) * 1e6
        started = time.perf_counter()
        payload = safe_pickle.dumps(model)
        dump_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        safe_pickle.loads(payload)
        load_ms = (time.perf_counter() - started) * 1000
        rows.append((name, learn_us, len(payload), dump_ms, load_ms))
        if name in ("ctr", "conversion_value"):
            assert len(payload) < 8_000
        else:
            assert len(payload) < 20_000_000
    with capsys.disabled():
        print("\nspec               learn µs/example   payload bytes   dump ms   load ms")
        for name, learn_us, size, dump_ms, load_ms in rows:
            print(f"{name:<18} {learn_us:>16.1f} {size:>15,} {dump_ms:>9.1f} {load_ms:>9.1f}")


def test_the_label_strategy_is_described_only_when_not_the_original() -> None:
    spec = get_spec("ctr")
    assert "strategy" not in json.loads(spec.describe())["label"]
    for strategy in ("in_order", "fake_negative"):
        changed = replace(spec, label=replace(spec.label, strategy=strategy))
        assert json.loads(changed.describe())["label"]["strategy"] == strategy


def test_a_strategy_needs_a_binary_label() -> None:
    with pytest.raises(ConfigurationError):
        LabelDefinition("v", 60, value_kinds=("conversion",), strategy="in_order")
    with pytest.raises(ConfigurationError):
        LabelDefinition("c", 60, positive_kinds=("click",), strategy="later")  # type: ignore[arg-type]


def test_fake_negative_importance_weights() -> None:
    spec = get_spec("ctr")
    assert spec.importance(1.0, 0.3) == spec.importance(0.0, 0.3) == 1.0
    fake = replace(spec, label=replace(spec.label, strategy="fake_negative"))
    assert fake.importance(1.0, 0.3) == pytest.approx(1.3)
    assert fake.importance(0.0, 0.3) == pytest.approx(0.7 * 1.3)
    # Expected weight per seen request of true probability p, seen as a negative always
    # and as a positive with probability p: positives p, negatives 1 - p, as unbiased.
    p = 0.3
    assert p * fake.importance(1.0, p) / (1 + p) == pytest.approx(p)
    assert fake.importance(0.0, p) / (1 + p) == pytest.approx(1 - p)
