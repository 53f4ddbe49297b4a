"""A copy of an example that label-join re-emitted after a crash is learned once, and the
learner that resumed in between learns exactly what one that never stopped learns."""

from __future__ import annotations

from typing import Any

import pytest

from streamlearn.models import SPECS
from streamlearn.models.online import OnlineLearner
from streamlearn.models.recent_examples import RecentExamples
from tests.unit.test_learning import KEY, T0, TOPIC, examples, in_process_payload

pytestmark = pytest.mark.unit

Positioned = tuple[dict[str, Any], str, int, int]


def with_copies(records: list[dict[str, Any]], every: int, lag: int) -> list[Positioned]:
    """One partition: after every ``every``-th example, the ``lag`` before it again (a
    re-emitted batch), at the next offsets."""
    out: list[Positioned] = []
    for i, record in enumerate(records):
        out.append((record, TOPIC, 0, len(out)))
        if i % every == every - 1:
            for copy in records[i - lag + 1 : i + 1]:
                out.append((dict(copy), TOPIC, 0, len(out)))
    return out


def test_the_window_is_of_offsets_and_forgets_what_fell_out() -> None:
    recent = RecentExamples(window=3)
    assert not recent.seen("p", 10, ("a", 1.0))
    assert recent.seen("p", 12, ("a", 1.0))  # two offsets later: a copy
    assert not recent.seen("p", 12, ("b", 1.0))  # the same offset again: a redelivery
    assert not recent.seen("q", 13, ("a", 1.0))  # another partition
    assert not recent.seen("p", 16, ("a", 1.0))  # offsets 10 and 12 fell out (16 - 3 = 13)
    assert not recent.seen("p", 17, ("a", 0.0))  # another label: another example


def test_a_re_emitted_copy_is_learned_once() -> None:
    records = examples(300, seed=4)
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    assert learner.learn_many(with_copies(records, every=50, lag=7)) == 300
    assert learner.counters.copies == 6 * 7
    assert learner.snapshot(T0)["payload"] == in_process_payload("ctr", records)


def test_a_negative_and_its_positive_are_two_examples() -> None:
    """Fake negatives: the same request id, label 0 at the impression, 1 at the click."""
    (record,) = examples(1, seed=4)
    negative, positive = {**record, "label": 0.0}, {**record, "label": 1.0}
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    stream = [(negative, TOPIC, 0, 0), (positive, TOPIC, 0, 1), (dict(positive), TOPIC, 0, 2)]
    assert learner.learn_many(stream) == 2
    assert learner.counters.copies == 1


@pytest.mark.parametrize("cut", [49, 50, 53, 57, 120])
def test_a_resumed_learner_knows_the_examples_before_its_snapshot(cut: int) -> None:
    """Cut between an example and its copy: the resumed learner reads the window before
    its offsets again (as the agent seeks there) and skips the copy, like the learner
    that never stopped."""
    records = with_copies(examples(200, seed=5), every=50, lag=7)
    first = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    first.learn_many(records[:cut])
    snapshot = first.snapshot(T0)
    second = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    second.resume(snapshot)
    start = max(0, cut - second.recent_examples.window)
    second.learn_many(records[start:])
    once = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    once.learn_many(records)
    assert second.trained_examples == once.trained_examples == 200
    assert second.snapshot(T0)["payload"] == once.snapshot(T0)["payload"]


def test_a_redelivery_does_not_disturb_the_window() -> None:
    """Offsets already read, delivered again (a rebalance without a resume), change
    nothing: the same examples are learned as without the redelivery."""
    records = with_copies(examples(120, seed=6), every=40, lag=5)
    again = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    again.learn_many(records[:60])
    again.learn_many(records[30:])
    once = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    once.learn_many(records)
    assert again.trained_examples == once.trained_examples == 120
    assert again.snapshot(T0)["payload"] == once.snapshot(T0)["payload"]
