"""DerivedFeatures: the click specs' fixed transforms of numeric features."""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlearn.models.features import DerivedFeatures, FeatureEncoder, model_input
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.specs import get_spec

pytestmark = pytest.mark.unit

CLICK = DerivedFeatures(
    log=("price",),
    log1p=(("recency_s", 600.0),),
    cyclic=(("hour", 24.0),),
    known=("recency_s",),
    drop=("ctx.device",),
)


def test_transforms_replace_the_raw_values_and_keep_the_rest() -> None:
    x: dict[Hashable, Any] = {}
    x.update(
        model_input(
            {"price": 20.0, "hour": 6, "recency_s": 600.0, "category": "books", "is_mobile": True},
            {"placement": "top", "device": "mobile"},
        )
    )
    out = CLICK.transform_one(x)
    assert list(out) == sorted(str(key) for key in out)
    assert out == {
        "category": "books",
        "ctx.placement": "top",
        "hour.cos": pytest.approx(0.0),
        "hour.sin": pytest.approx(1.0),
        "is_mobile": 1.0,
        "price": pytest.approx(math.log(20.0)),
        "recency_s": pytest.approx(math.log(2.0)),
        "recency_s.known": "yes",
    }
    assert x["price"] == 20.0  # the input is not modified


def test_an_absent_or_impossible_value_is_missing_and_said_to_be_unknown() -> None:
    out = CLICK.transform_one({"price": 0.0, "hour": 23.0, "recency_s": -1.0})
    # log of 0 and log1p of a negative age are dropped; hour 23 sits next to hour 0.
    assert "price" not in out
    assert "recency_s" not in out
    assert out["recency_s.known"] == "yes"
    assert out["hour.cos"] == pytest.approx(math.cos(2 * math.pi * 23 / 24))
    assert CLICK.transform_one({"hour": 1.0})["recency_s.known"] == "no"


def test_an_unknown_visitor_gets_its_own_weight_after_the_encoder() -> None:
    # Standardised, an absent number would read as its mean; the indicator is one-hot.
    encoded = FeatureEncoder().transform_one(CLICK.transform_one({"hour": 1.0}))
    assert encoded["recency_s.known=no"] == 1.0


@pytest.mark.parametrize("name", ["ctr", "ctr_tree"])
def test_the_click_specs_pickle_their_transforms_and_load_through_the_safe_unpickler(
    name: str,
) -> None:
    spec = get_spec(name)
    # 2: the derived features came; ctr_tree 3: its calibration, 4: its inheriting leaves,
    # 5: the forgetting Platt map on its calibration, 6: the average over its recent
    # states, 7: those copies asked through their log-odds form.
    assert spec.revision == {"ctr": 2, "ctr_tree": 8}[name]
    assert "DerivedFeatures(log=price" in spec.describe()
    model = spec.new_model(0)
    x = model_input({"price": 12.5, "hour": 3, "category": "food"}, {"placement": "side"})
    spec.learn(model, x, 1.0)
    loaded = loads(dumps(model))
    assert spec.predict(loaded, x) == spec.predict(model, x)
    assert dumps(loaded) == dumps(model)


def _derived_step_by_step(transforms: DerivedFeatures, x: dict[Hashable, Any]) -> dict:
    """What ``derive`` is documented to do, one transform after another: every flag read
    from the input, the drops, the flags set, then each log, log1p and cyclic in turn."""
    out = dict(x)
    flags = [(f"{name}.known", "yes" if name in out else "no") for name in transforms.known]
    for name in transforms.drop:
        out.pop(name, None)
    out.update(flags)
    for name in transforms.log:
        value = out.pop(name, None)
        if isinstance(value, float) and value > 0:
            out[name] = math.log(value)
    for name, scale in transforms.log1p:
        value = out.pop(name, None)
        if isinstance(value, float) and value >= 0:
            out[name] = math.log1p(value / scale)
    for name, period in transforms.cyclic:
        value = out.pop(name, None)
        if isinstance(value, float):
            out[f"{name}.sin"] = math.sin(2 * math.pi * value / period)
            out[f"{name}.cos"] = math.cos(2 * math.pi * value / period)
    return out


NAMES = st.sampled_from(["a", "b", "a.known", "b.known", "a.sin", "ctx.c"])


@settings(max_examples=400, database=None)
@given(
    log=st.lists(NAMES, max_size=2),
    log1p=st.lists(st.tuples(NAMES, st.sampled_from([1.0, 600.0])), max_size=2),
    cyclic=st.lists(st.tuples(NAMES, st.sampled_from([24.0, 7.0])), max_size=2),
    known=st.lists(NAMES, max_size=3),
    drop=st.lists(NAMES, max_size=2),
    x=st.dictionaries(NAMES, st.sampled_from([-1.0, 0.0, 0.5, 3.0, 1e9, "yes", "books"])),
)
def test_derive_is_its_transforms_one_after_another(
    log: list[str],
    log1p: list[tuple[str, float]],
    cyclic: list[tuple[str, float]],
    known: list[str],
    drop: list[str],
    x: dict[Hashable, Any],
) -> None:
    # Names shared between transforms, and flags named like inputs, included: however it
    # is made faster, derive must keep the order the docstring gives.
    transforms = DerivedFeatures(tuple(log), tuple(log1p), tuple(cyclic), tuple(known), tuple(drop))
    out = dict(x)
    transforms.derive(out)
    expected = _derived_step_by_step(transforms, x)
    assert out == expected
    assert sorted(out) == sorted(expected)
