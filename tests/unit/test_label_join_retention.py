"""What label-join remembers of a request after its horizon closed, for the retention time
(``STREAMLEARN_DEDUP_WINDOW_S``): enough to recognise it again, not what it was served.

A soak at 200 predictions/s grew label-join by about 1 GB/h: every closed entry kept its
served features, score, arm and user for the whole hour. The remembered entry must not
grow with the prediction's features, and replays of every kind must still count as they
did.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamlearn.runtime.state import encode_value
from tests.unit.test_label_join import (
    AS_LABELLED,
    Harness,
    feedback,
    prediction,
    with_strategy,
)

WIDE = {f"feature_{i}": float(i) for i in range(200)}
"""Served features of a few kB: what a closed entry must not keep."""


def _remembered_bytes(h: Harness) -> int:
    return max(len(encode_value(entry)) for entry in h.state.values())


@pytest.mark.parametrize(
    ("model", "kinds", "outcome"),
    [
        ("ctr", ("impression", "click"), "positive"),
        ("ctr", ("impression",), "negative"),
        ("ctr", (), "unseen"),
        ("conversion_value", ("impression", "conversion"), "value"),
    ],
)
def test_a_closed_entry_does_not_keep_what_was_served(
    model: str, kinds: tuple[str, ...], outcome: str
) -> None:
    h = Harness()
    h.pred(prediction("r1", model_name=model, features=WIDE))
    for second, kind in enumerate(kinds, start=1):
        h.fb(feedback("r1", kind, second, value=12.0 if kind == "conversion" else None))
    h.advance(3700)  # past the longest horizon + lateness, inside the retention hour
    assert h.state["r1"]["done"] == outcome
    assert _remembered_bytes(h) < 400, h.state["r1"]


def test_state_after_many_closed_horizons_does_not_grow_with_the_features() -> None:
    narrow, wide = Harness(), Harness()
    for h, features in ((narrow, {"price": 1.0}), (wide, WIDE)):
        for i in range(300):
            h.pred(prediction(f"r{i}", served_s=i, features=features))
            h.fb(feedback(f"r{i}", "impression", i + 1))
        h.advance(300 + 1900)
        assert len(h.state) == 300  # every horizon closed, every entry remembered
    size = len(json.dumps(narrow.state))
    assert len(json.dumps(wide.state)) == size


def test_replays_after_the_close_count_as_before() -> None:
    h = Harness(specs=with_strategy("fake_negative"))
    h.pred(prediction("r1", features=WIDE))
    seen = feedback("r1", "impression", 1)
    click = feedback("r1", "click", 2)
    h.fb(seen)
    h.fb(click)
    h.advance(1900)
    emitted = len(h.examples)
    assert h.pred(prediction("r1", features=WIDE)) == []
    assert h.fb(seen) == []
    assert h.fb(click) == []
    assert h.fb(feedback("r1", "click", 3)) == []  # a new event, inside the horizon
    assert h.fb(feedback("r1", "click", 2000)) == []  # after it
    h.advance(1900 + 3600)
    assert len(h.examples) == emitted
    assert h.state == {}
    counts = h.counts
    assert counts["duplicate_predictions"] == 1
    assert counts["duplicate_feedback"] == 2
    assert counts["after_label"] == 1
    assert counts["late_feedback"] == 1


def test_a_restored_closed_entry_is_still_recognised() -> None:
    h = Harness(specs=AS_LABELLED)
    h.pred(prediction("r1", features=WIDE))
    h.fb(feedback("r1", "impression", 1))
    h.advance(1900)
    restored: dict[str, Any] = json.loads(json.dumps(h.state))
    again = Harness(specs=AS_LABELLED)
    again.state.update(restored)
    again.joiner.reindex()
    again.advance(1900)
    assert again.pred(prediction("r1")) == []
    assert again.counts["duplicate_predictions"] == 1
    again.advance(1900 + 3600)
    assert again.state == {}
