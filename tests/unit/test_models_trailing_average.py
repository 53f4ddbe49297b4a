"""TrailingAverage: a classifier's probability averaged with frozen copies of itself."""

from __future__ import annotations

import copy
import os
import pickle
from typing import Any

import pytest

from streamlearn.models import frozen_copy
from streamlearn.models.exceptions import ForbiddenClass, UndecodableSnapshot
from streamlearn.models.features import SeededGaussianSplitter
from streamlearn.models.frozen_copy import LOADED_COPIES_KEPT, FrozenCopy, loaded_copy
from streamlearn.models.inheriting_tree import InheritingHoeffdingTreeClassifier
from streamlearn.models.log_odds_tree import log_odds_tree
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.trailing_average import TrailingAverage, mean_probability
from tests.tree_inputs import tree_stream

pytestmark = pytest.mark.unit


def _tree() -> InheritingHoeffdingTreeClassifier:
    return InheritingHoeffdingTreeClassifier(
        grace_period=200, leaf_prediction="nb", splitter=SeededGaussianSplitter(seed=0)
    )


def _p(model: Any, x: dict[Any, Any]) -> float:
    return float(model.predict_proba_one(x).get(True, 0.0))


def test_a_copy_is_frozen_every_n_examples_and_only_the_last_ones_are_kept() -> None:
    averaged = TrailingAverage(_tree(), every=500, keep=2)
    alone = _tree()
    taken: list[int] = []
    for n, (x, y) in enumerate(tree_stream(3000), start=1):
        averaged.learn_one(x, y)
        alone.learn_one(x, y)
        if n % 500 == 0:
            taken.append(n)
            # The newest copy is the live model as it is now, and a copy, not the model.
            assert dumps(averaged.members[-1]) == dumps(alone)
            assert averaged.members[-1] is not averaged.classifier
        assert len(averaged.members) == 1 + min(n // 500, 2)
    assert taken == [500, 1000, 1500, 2000, 2500, 3000]
    # The live model learns every example exactly as it would alone.
    assert dumps(averaged.classifier) == dumps(alone)


def test_frozen_copies_do_not_learn_and_the_probability_is_the_members_mean() -> None:
    averaged = TrailingAverage(_tree(), every=1000, keep=3)
    stream = tree_stream(5000)
    for x, y in stream[:3000]:
        averaged.learn_one(x, y)
    oldest = dumps(averaged.members[1])
    for x, y in stream[3000:3999]:
        averaged.learn_one(x, y)
    assert dumps(averaged.members[1]) == oldest  # not taken yet: nothing moved it
    probes = [x for x, _ in tree_stream(200, seed=12)]
    spread = 0.0
    for x in probes:
        members = [_p(member, x) for member in averaged.members]
        assert len(members) == 4
        assert _p(averaged, x) == pytest.approx(sum(members) / 4, abs=1e-15)
        spread = max(spread, max(members) - min(members))
    assert spread > 0.01  # the states averaged do differ: the test can tell them apart


def test_the_live_tree_is_asked_through_river_and_the_copies_through_their_log_odds() -> None:
    # The worker's scorer asks the copies the same way (tests/unit/test_serving_scoring.py),
    # so a served score is the learner's to the bit.
    averaged = TrailingAverage(_tree(), every=1000, keep=3)
    for x, y in tree_stream(4000):
        averaged.learn_one(x, y)
    live = averaged.classifier
    members = [lambda x: _p(live, x), *map(log_odds_tree, averaged.copies)]
    assert len(members) == 4
    for x, _ in tree_stream(500, seed=15):
        assert _p(averaged, x) == mean_probability(members, x)


def test_a_version_moves_less_than_the_tree_alone_between_two_snapshots() -> None:
    # ctr_tree's setting, with a snapshot every 150 examples (about one every 10 s in the
    # simulated world): between two snapshots the average changes by the live tree's step
    # spread over its members, and by a copy replacing the oldest every 500, not by the
    # whole of the tree's step.
    averaged = TrailingAverage(_tree(), every=500, keep=6)
    alone = _tree()
    probes = [x for x, _ in tree_stream(300, seed=13)]
    moved_alone = moved_averaged = 0.0
    before: tuple[list[float], list[float]] | None = None
    for n, (x, y) in enumerate(tree_stream(12_000), start=1):
        averaged.learn_one(x, y)
        alone.learn_one(x, y)
        if n % 150 == 0:
            now = ([_p(alone, p) for p in probes], [_p(averaged, p) for p in probes])
            if before is not None and n > 3000:
                moved_alone += sum(abs(a - b) for a, b in zip(now[0], before[0], strict=True))
                moved_averaged += sum(abs(a - b) for a, b in zip(now[1], before[1], strict=True))
            before = now
    assert moved_averaged < 0.6 * moved_alone


def test_it_pickles_in_the_safe_form_and_replaying_the_examples_gives_the_same_bytes() -> None:
    first, second = TrailingAverage(_tree(), every=700, keep=3), TrailingAverage(_tree(), 700, 3)
    for x, y in tree_stream(4000):
        first.learn_one(x, y)
        second.learn_one(x, y)
    payload = dumps(first)
    assert payload == dumps(second)
    loaded = loads(payload)
    assert type(loaded) is TrailingAverage
    for x, _ in tree_stream(100, seed=14):
        assert _p(loaded, x) == _p(first, x)


def test_weights_pass_on_to_the_live_model() -> None:
    weighted, plain = TrailingAverage(_tree(), every=300, keep=1), _tree()
    for x, y in tree_stream(1200):
        weighted.learn_one(x, y, w=2.0)
        plain.learn_one(x, y, w=2.0)
    assert dumps(weighted.classifier) == dumps(plain)


@pytest.mark.parametrize(("every", "keep"), [(0, 3), (100, 0)])
def test_bad_parameters_are_refused(every: int, keep: int) -> None:
    with pytest.raises(ValueError, match="every >= 1 and keep >= 1"):
        TrailingAverage(_tree(), every=every, keep=keep)


def test_a_snapshot_holds_each_copy_pickled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    averaged = TrailingAverage(_tree(), every=500, keep=3)
    for x, y in tree_stream(2000):
        averaged.learn_one(x, y)
    pickled: list[Any] = []
    real = frozen_copy.dumps

    def counting(model: Any) -> bytes:
        pickled.append(model)
        return real(model)

    monkeypatch.setattr(frozen_copy, "dumps", counting)
    first = dumps(averaged)
    assert len(pickled) == 3  # each copy, on its own
    for x, y in tree_stream(600, seed=16):
        averaged.learn_one(x, y)  # one copy more: the oldest goes
    second = dumps(averaged)
    assert len(pickled) == 4  # only the new copy is pickled again
    assert first != second
    for copy_payload in (frozen.payload for frozen in averaged._frozen[:2]):
        assert copy_payload in first
        assert copy_payload in second


def test_versions_loaded_share_their_common_copies_and_compiled_probabilities() -> None:
    averaged = TrailingAverage(_tree(), every=500, keep=3)
    stream = tree_stream(2400)
    for x, y in stream[:2000]:
        averaged.learn_one(x, y)
    older = loads(dumps(averaged))
    for x, y in stream[2000:2400]:
        averaged.learn_one(x, y)  # no copy taken: the live tree alone moved
    newer = loads(dumps(averaged))
    assert older.classifier is not newer.classifier
    for old, new in zip(older.copies, newer.copies, strict=True):
        assert old is new
    assert older.copy_probabilities == newer.copy_probabilities  # the same functions
    for x, _ in tree_stream(100, seed=17):
        assert _p(newer, x) == _p(averaged, x)


def test_a_copys_bytes_go_through_the_restricted_unpickler() -> None:
    averaged = TrailingAverage(_tree(), every=100, keep=1)
    for x, y in tree_stream(100):
        averaged.learn_one(x, y)
    # A copy whose bytes would run os.system(...) when unpickled by pickle.loads.
    averaged._frozen[0] = FrozenCopy(averaged.copies[0], pickle.dumps(os.system))
    with pytest.raises(ForbiddenClass):
        loads(dumps(averaged))
    averaged._frozen[0] = FrozenCopy(averaged.copies[0], b"not a pickle")
    with pytest.raises(UndecodableSnapshot):
        loads(dumps(averaged))


def test_a_frozen_copy_is_never_pickled_as_an_object() -> None:
    with pytest.raises(TypeError, match="pickled as its payload"):
        pickle.dumps(FrozenCopy(_tree()))


def test_a_process_keeps_a_bounded_number_of_loaded_copies() -> None:
    payloads = [dumps(_tree_with_grace(n)) for n in range(LOADED_COPIES_KEPT + 5)]
    first = loaded_copy(payloads[0])
    assert loaded_copy(payloads[0]) is first
    for payload in payloads[1:]:
        loaded_copy(payload)
    assert len(frozen_copy._loaded) <= LOADED_COPIES_KEPT
    assert loaded_copy(payloads[0]) is not first  # evicted, loaded again
    with pytest.raises(UndecodableSnapshot, match="bytes, not str"):
        loaded_copy("a string")


def _tree_with_grace(grace_period: int) -> InheritingHoeffdingTreeClassifier:
    return InheritingHoeffdingTreeClassifier(grace_period=grace_period + 1)


def test_a_deepcopy_goes_through_the_payloads_and_is_the_same_model() -> None:
    averaged = TrailingAverage(_tree(), every=100, keep=2)
    for x, y in tree_stream(300):
        averaged.learn_one(x, y)
    twin = copy.deepcopy(averaged)
    assert twin.classifier is not averaged.classifier
    assert [type(member) for member in twin.copies] == [type(m) for m in averaged.copies]
    assert dumps(twin) == dumps(averaged)
    for x, _ in tree_stream(50, seed=18):
        assert _p(twin, x) == _p(averaged, x)
