"""A learner resumed from any version it published decides the next versions as the
learner that ran through: each snapshot carries its promotion gate's state
(``gate_state``, sealed by its own MAC: :mod:`streamlearn.models.gate_state`).

Before, a resumed learner started the gate's window anew: it held back as ``short_window``
versions the other promoted (or judged worse), served another promoted version from then
on, and so made other decisions for as long as the two promoted versions differed; with
the candidate judge it cut its next candidate elsewhere, so every later version differed.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from streamlearn.models import SPECS, verify_snapshot
from streamlearn.models.exceptions import SnapshotTooLarge
from streamlearn.models.gate_state import opened
from streamlearn.models.keyring import Keyring, PreviousKey
from streamlearn.models.online import OnlineLearner
from streamlearn.models.snapshot import is_promoted
from streamlearn.registry.compatibility import Level, check
from streamlearn.serde import AvroSerde, InMemoryRegistry
from streamlearn.serde.schemas import schema_text
from tests.unit.test_learning import KEY, examples, positioned

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
EVERY = 100  # examples per snapshot
AHEAD = 7  # versions compared after each resume
Stream = list[tuple[dict[str, Any], str, int, int]]


def _spec(
    judge: str, window: int = 300, margin: float = 0.0, auc_margin: float | None = None
) -> Any:
    return replace(
        SPECS["ctr"], promotion_margin=margin, promotion_window=window, promotion_judge=judge,
        snapshot_every_examples=EVERY, snapshot_every_s=10**9, promotion_auc_margin=auc_margin,
    )  # fmt: skip


def _stream(seed: int) -> Stream:
    records = examples(3000, seed=seed)
    # Stretches of wrong labels (all positive), so that some versions are judged worse.
    for start in (900, 1900):
        records[start : start + 250] = [{**r, "label": 1.0} for r in records[start : start + 250]]
    return positioned(records)


def _run(learner: OnlineLearner, stream: Stream, start: int = 0) -> list[dict[str, Any]]:
    """Learn ``stream[start:]`` in batches of ``EVERY``, publishing what is due after each
    (the cadence the learner agent keeps, by examples)."""
    published = []
    learner.snapshot_due(0.0)
    for first in range(start, len(stream), EVERY):
        learner.learn_many(stream[first : first + EVERY])
        if learner.snapshot_due(0.0):
            snapshot = learner.snapshot(T0, 0.0)
            if snapshot is not None:
                published.append(snapshot)
    return published


def _decided(snapshot: dict[str, Any]) -> tuple[Any, ...]:
    """What the gate decided and what was published, without the prequential figures (a
    resumed learner evaluates from its resume on, by design)."""
    gate = {k: v for k, v in snapshot["metrics"].items() if k.startswith("gate_")}
    return (
        snapshot["version"], snapshot["trained_examples"], snapshot["payload_sha256"],
        is_promoted(snapshot), gate, opened(snapshot, KEY),
    )  # fmt: skip


def _published_at(snapshot: dict[str, Any]) -> int:
    """Examples learned when ``snapshot`` was published (a candidate's: at the next cut)."""
    state = opened(snapshot, KEY) or {}
    return max(int(snapshot["trained_examples"]), int(state.get("cut_at", 0)))


def _resumed_runs(
    judge: str, seed: int, auc_margin: float | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every version of a run through, checked against a learner resumed from it; returns
    the run's versions and how many were held back."""
    spec, stream = _spec(judge, auc_margin=auc_margin), _stream(seed)
    through = _run(OnlineLearner(spec, signing_key=KEY), stream)
    for index, snapshot in enumerate(through[:-1]):
        promoted = [s for s in through[: index + 1] if is_promoted(s)][-1]
        resumed = OnlineLearner(spec, signing_key=KEY)
        resumed.resume(snapshot, promoted)
        # The agent reads again from the snapshot's offsets, in the batches it was cut at;
        # the next AHEAD versions (two windows and more) are compared.
        expected = through[index + 1 : index + 1 + AHEAD]
        later = _run(resumed, stream[: _published_at(expected[-1])], snapshot["trained_examples"])
        assert [_decided(s) for s in later[:AHEAD]] == [_decided(s) for s in expected], (
            f"resumed from v{snapshot['version']}"
        )
    return through, sum(not is_promoted(s) for s in through)


@pytest.mark.parametrize("seed", [3])
def test_a_learner_resumed_from_any_version_decides_as_the_one_that_ran_through(
    seed: int,
) -> None:
    through, held_back = _resumed_runs("trainee", seed)
    assert held_back >= 3, "the run must hold versions back for the test to mean anything"
    reasons = {"short_window" if "gate_log_loss" not in s["metrics"] else "judged" for s in
               through if not is_promoted(s)}  # fmt: skip
    assert reasons == {"short_window", "judged"}
    # A held-back version carries its window; a promoted one has none to carry.
    for snapshot in through:
        state = opened(snapshot, KEY)
        assert (state is None) == is_promoted(snapshot), snapshot["version"]


@pytest.mark.parametrize("seed", [5])
def test_with_the_candidate_judge_a_resumed_learner_cuts_where_the_other_did(seed: int) -> None:
    through, held_back = _resumed_runs("candidate", seed)
    assert len(through) >= 6
    assert held_back >= 1
    judged = [s for s in through if "gate_examples" in s["metrics"]]
    assert judged
    for snapshot in judged:  # the next candidate was cut as this one was published
        state = opened(snapshot, KEY)
        assert state is not None
        assert state["cut_at"] > snapshot["trained_examples"]


def test_judging_the_ranking_too_a_resumed_learner_decides_as_the_one_that_ran_through() -> None:
    """The candidate's AUC is scored again from the examples it is relearned on, as its
    losses are: nothing more in the gate's state."""
    through, held_back = _resumed_runs("candidate", 5, auc_margin=0.0)
    assert held_back >= 1
    assert any("gate_auc" in s["metrics"] for s in through)


def _held_back() -> tuple[Any, list[dict[str, Any]], list[dict[str, Any]]]:
    """A trainee-judged run: the spec, its versions, and those carrying a gate state."""
    spec = _spec("trainee")
    through = _run(OnlineLearner(spec, signing_key=KEY), _stream(3))
    return spec, through, [s for s in through if opened(s, KEY) is not None]


def _promoted_before(through: list[dict[str, Any]], version: int) -> dict[str, Any]:
    return [s for s in through if is_promoted(s) and s["version"] < version][-1]


def test_a_gate_state_that_does_not_match_its_snapshot_is_not_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec, through, carrying = _held_back()
    first, second = carrying[0], carrying[1]
    promoted = _promoted_before(through, second["version"])
    sealed = json.loads(second["gate_state"])
    shorter = {**sealed, "state": {**sealed["state"], "losses": sealed["state"]["losses"][8:]}}
    for gate_state in (json.dumps(shorter), first["gate_state"], "{not json"):
        learner = OnlineLearner(spec, signing_key=KEY)
        with caplog.at_level(logging.ERROR):
            learner.resume({**second, "gate_state": gate_state}, promoted)
        assert learner.version == second["version"]  # resumed all the same
        assert learner.gate is not None
        assert learner.gate.state() is None
        assert "gate state not used" in caplog.text
        caplog.clear()


def test_the_signature_does_not_cover_the_gate_state_so_earlier_workers_still_verify() -> None:
    held = _held_back()[2][0]
    as_an_earlier_reader_decodes_it = {k: v for k, v in held.items() if k != "gate_state"}
    verify_snapshot(as_an_earlier_reader_decodes_it, KEY)


def test_the_gate_state_goes_through_avro_and_the_schema_change_is_compatible() -> None:
    spec, through, carrying = _held_back()
    held = carrying[0]
    promoted = _promoted_before(through, held["version"])
    serde = AvroSerde.for_topic(InMemoryRegistry(), "model.state", "ModelSnapshot")
    decoded = serde.decode(serde.encode(held))
    assert decoded["gate_state"] == held["gate_state"]
    learner = OnlineLearner(spec, signing_key=KEY)
    learner.resume(decoded, promoted)
    pairs = len(base64.b64decode(opened(held, KEY)["losses"])) // 16  # type: ignore[index]
    assert learner.gate_resumed == f"the gate's window of {pairs:,} held-out losses"
    assert learner.gate is not None
    assert learner.gate.state() == opened(held, KEY)
    new = schema_text("ModelSnapshot")
    schema = json.loads(new)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "gate_state"]
    assert check(new, [json.dumps(schema)], Level.FULL) == []


def test_a_version_signed_again_after_a_rotation_keeps_its_gate_state_under_the_new_key() -> None:
    """The promoted version behind a held-back one is published again with the new key;
    its gate state (the candidate judge's cut) is sealed again, or the next learner to
    resume from it would not use it."""
    old, new = b"old-signing-key", b"new-signing-key"
    spec, stream = _spec("candidate"), _stream(3)
    through = _run(OnlineLearner(spec, signing_key=old, signing_key_id="k-old"), stream)
    # A held-back version behind which the promoted one was judged (and so carries a cut).
    held, promoted = next(
        (s, p) for s in through if not is_promoted(s)
        if opened(p := _promoted_before(through, s["version"]), old) is not None
    )  # fmt: skip
    keyring = Keyring(new, "k-new", (PreviousKey("k-old", old, T0.replace(year=2100)),))
    learner = OnlineLearner(spec, signing_key=new, signing_key_id="k-new", verification=keyring)
    learner.resume(held, promoted)
    again = learner.take_signed_again()
    assert again is not None
    assert again["signing_key_id"] == "k-new"
    assert opened(again, new) == opened(promoted, old)


def test_the_gate_state_counts_toward_the_largest_snapshot_a_learner_makes() -> None:
    spec, stream = _spec("trainee", window=2000), _stream(3)
    learner = OnlineLearner(spec, signing_key=KEY)
    learner.learn_many(stream[:1000])
    learner.snapshot(T0)  # promoted: nothing to carry
    learner.learn_many(stream[1000:1500])
    payload_bytes = len(learner.snapshot(T0)["payload"])  # type: ignore[index]
    learner.learn_many(stream[1500:2000])
    learner.max_payload_bytes = payload_bytes + 1000  # the payload fits, with its window not
    with pytest.raises(SnapshotTooLarge) as refused:
        learner.snapshot(T0)
    size, limit = (int(n.replace(",", "")) for n in re.findall(r"[\d,]{4,}", str(refused.value)))
    assert size > limit == payload_bytes + 1000, "the size said is the record's, state included"


def test_a_learner_asked_for_a_version_before_its_cut_publishes_nothing_and_cuts_there() -> None:
    """The agent asks for a version when a rebalance takes the partition away. A resumed
    learner that had not reached its cut then cut the trainee at once, at an example the
    learner that ran through did not cut at; given the partition back (nothing newer on
    model.state, so no resume) it published a version that run never made."""
    spec, stream = _spec("candidate"), _stream(5)
    through = _run(OnlineLearner(spec, signing_key=KEY), stream)
    index = next(i for i, s in enumerate(through) if opened(s, KEY) is not None)
    snapshot = through[index]
    resumed = OnlineLearner(spec, signing_key=KEY)
    resumed.resume(snapshot, _promoted_before(through, snapshot["version"] + 1))
    start = snapshot["trained_examples"]
    resumed.learn_many(stream[start : start + 30])
    cut_at = opened(snapshot, KEY)["cut_at"]  # type: ignore[index]
    assert resumed.gate_resumed == f"its next candidate to be cut at {cut_at:,} examples"
    assert resumed.unpublished == 30
    assert resumed.snapshot(T0, 0.0) is None  # closing: nothing to publish yet
    resumed.learn_many(stream[start + 30 : start + EVERY])  # the partition is back
    assert not resumed.snapshot_due(0.0)
    expected = through[index + 1 : index + 1 + AHEAD]
    later = _run(resumed, stream[: _published_at(expected[-1])], start + EVERY)
    assert [_decided(s) for s in later[:AHEAD]] == [_decided(s) for s in expected]


def test_without_its_promoted_version_a_held_back_versions_window_is_not_used() -> None:
    """The losses were scored against the promoted version behind it; judged against the
    resumed version instead (the promoted one not given, or refused), they would be
    averaged with losses against another model."""
    spec, _, carrying = _held_back()
    held = next(s for s in carrying if not is_promoted(s))
    learner = OnlineLearner(spec, signing_key=KEY)
    learner.resume(held, None)
    assert learner.gate is not None
    assert learner.gate.state() is None
