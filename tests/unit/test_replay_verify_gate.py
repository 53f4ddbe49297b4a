"""``replay verify`` decides each version's promotion again, not only its payload.

Before, a version the gate held back but published as promoted (or promoted on other
figures) verified as identical: only the payload and the example count were compared, and
the verdict is what workers serve by.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from streamlearn.models import SPECS
from streamlearn.models.gate_state import opened, sealed
from streamlearn.models.online import OnlineLearner
from streamlearn.models.snapshot import is_promoted, signed_again
from streamlearn.models.specs import ModelSpec
from streamlearn.replay.examples import Example, PreparedRecord, ReadCounts, prepared_records
from streamlearn.replay.history import ModelHistory, PublishedSnapshot
from streamlearn.replay.positions import PartitionRange
from streamlearn.replay.verify import Verdict, verify_version
from tests.unit.test_learning import examples

KEY = "unit-test-signing-key"
TOPIC = "training.examples"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
EVERY = 100


def _spec(judge: str) -> ModelSpec:
    return replace(
        SPECS["ctr"], promotion_margin=0.0, promotion_window=150, promotion_judge=judge,
        snapshot_every_examples=EVERY, snapshot_every_s=10**9,
    )  # fmt: skip


def _stream(seed: int) -> list[Example]:
    records = examples(2400, seed=seed)
    # Stretches of wrong labels (all positive), so that some versions are judged worse.
    for start in (700, 1500):
        records[start : start + 250] = [{**r, "label": 1.0} for r in records[start : start + 250]]
    return [(record, 0, offset) for offset, record in enumerate(records)]


def _live(spec: ModelSpec, stream: list[Example]) -> ModelHistory:
    """What a live learner with ``spec``'s gate publishes, learning in batches of EVERY."""
    learner = OnlineLearner(spec, signing_key=KEY)
    published = []
    learner.snapshot_due(0.0)
    for first in range(0, len(stream), EVERY):
        learner.learn_many((e, TOPIC, p, o) for e, p, o in stream[first : first + EVERY])
        if learner.snapshot_due(0.0):
            snapshot = learner.snapshot(NOW, 0.0)
            if snapshot is not None:
                published.append(PublishedSnapshot(snapshot, None))
    return ModelHistory("ctr", tuple(published), 0)


def _verify(history: ModelHistory, version: int, spec: ModelSpec, stream: list[Example]) -> Verdict:
    def read(ranges: list[PartitionRange], counts: ReadCounts) -> Iterable[PreparedRecord]:
        for partition_range in ranges:
            for example in stream[partition_range.start : partition_range.end]:
                counts.read += 1
                yield from prepared_records([example])

    published = history.version(version)
    assert published is not None
    return verify_version(
        history, published, topic=TOPIC, watermarks={0: (0, len(stream))},
        specs={**SPECS, "ctr": spec}, key=KEY, read_examples=read,
    )  # fmt: skip


def _forged(history: ModelHistory, version: int, **metrics: float) -> ModelHistory:
    """``history`` with ``version``'s metrics changed, signed with the real key (its gate
    state sealed again): what a learner deciding wrongly would publish."""
    snapshots = []
    for published in history.snapshots:
        snapshot = published.snapshot
        if published.version == version:
            state = opened(snapshot, KEY)
            snapshot = signed_again(
                {**snapshot, "metrics": {**snapshot["metrics"], **metrics}}, KEY, None
            )
            if state is not None:
                snapshot["gate_state"] = sealed(state, snapshot["signature"], KEY)
        snapshots.append(PublishedSnapshot(snapshot, None))
    return ModelHistory("ctr", tuple(snapshots), 0)


@pytest.mark.parametrize("judge", ["trainee", "candidate"])
def test_every_version_of_a_gated_run_has_the_verdict_its_inputs_give(judge: str) -> None:
    spec, stream = _spec(judge), _stream(3)
    history = _live(spec, stream)
    held_back = [s.version for s in history.snapshots if not is_promoted(s.snapshot)]
    assert len(held_back) >= 2, "the run must hold versions back for the test to mean anything"
    verdicts = [_verify(history, s.version, spec, stream) for s in history.snapshots]
    assert all(v.identical for v in verdicts), [v.detail for v in verdicts if not v.identical]
    said = {v.version: v.detail.split("; gate: ", 1)[1] for v in verdicts}
    assert all(said[v].startswith("held back") for v in held_back), said
    assert all(text.endswith("as published") for text in said.values()), said


@pytest.mark.parametrize("judge", ["trainee", "candidate"])
def test_a_version_published_as_promoted_that_its_gate_held_back_differs(judge: str) -> None:
    spec, stream = _spec(judge), _stream(3)
    history = _live(spec, stream)
    held = next(
        s.version for s in history.snapshots
        if not is_promoted(s.snapshot) and "gate_log_loss" in s.snapshot["metrics"]
    )  # fmt: skip
    verdict = _verify(_forged(history, held, promoted=1.0), held, spec, stream)
    assert not verdict.identical
    assert "payload sha256" in verdict.detail  # the payload itself is what its inputs give
    assert "gate verdict differs: held back (gate_examples" in verdict.detail
    assert "recomputed, promoted (gate_examples" in verdict.detail


def test_a_verdict_on_other_figures_differs() -> None:
    spec, stream = _spec("trainee"), _stream(3)
    history = _live(spec, stream)
    judged = next(s for s in history.snapshots if "gate_log_loss" in s.snapshot["metrics"])
    loss = judged.snapshot["metrics"]["gate_log_loss"]
    forged = _forged(history, judged.version, gate_log_loss=loss / 2)
    verdict = _verify(forged, judged.version, spec, stream)
    assert not verdict.identical
    recomputed, published = verdict.detail.split(" recomputed, ")
    assert f"gate_log_loss {loss:g}," in recomputed
    assert f"gate_log_loss {loss / 2:g}," in published


def test_without_the_gate_in_the_settings_the_verdict_is_said_not_compared() -> None:
    spec, stream = _spec("trainee"), _stream(3)
    history = _live(spec, stream)
    verdict = _verify(history, history.highest_version, SPECS["ctr"], stream)
    assert verdict.identical
    assert verdict.detail.endswith(
        "gate: verdict not compared: the settings give it no gate (STREAMLEARN_MODEL_PROMOTION)"
    )


def test_a_held_back_parent_whose_promoted_predecessor_is_gone_is_not_judged() -> None:
    spec, stream = _spec("trainee"), _stream(3)
    history = _live(spec, stream)
    versions = [s.version for s in history.snapshots]
    parent = next(
        v for v in versions[1:] if not is_promoted(history.snapshots[v - 1].snapshot)
        and v + 1 in versions
    )  # fmt: skip
    # Compaction took the version before the held-back parent.
    kept = tuple(s for s in history.snapshots if s.version != parent - 1)
    verdict = _verify(ModelHistory("ctr", kept, 0), parent + 1, spec, stream)
    assert verdict.identical
    assert f"verdict not compared: v{parent - 1}, before the held-back v{parent}, is gone" in (
        verdict.detail
    )


def test_a_gate_state_that_does_not_open_differs_and_says_why() -> None:
    spec, stream = _spec("trainee"), _stream(3)
    history = _live(spec, stream)
    held = next(s for s in history.snapshots if not is_promoted(s.snapshot))
    # Its gate state sealed to another signature than its own.
    state = opened(held.snapshot, KEY)
    assert state is not None
    resealed = {**held.snapshot, "gate_state": sealed(state, "another signature", KEY)}
    snapshots = tuple(
        PublishedSnapshot(resealed, None) if s is held else s for s in history.snapshots
    )
    verdict = _verify(ModelHistory("ctr", snapshots, 0), held.version, spec, stream)
    assert not verdict.identical
    assert re.search(
        r"gate: the gate's state after it differs: a window of \d+ held-out losses "
        r"\(sha256 [0-9a-f]{12}\) recomputed, a state that does not open \(gate_state's MAC "
        r"does not match the snapshot and key\) published$",
        verdict.detail,
    ), verdict.detail


def test_a_version_recomputed_from_scratch_is_not_judged() -> None:
    """Its parent compacted away, a version is recomputed from offset 0 by a learner whose
    gate never saw what the live one had promoted: no verdict to compare."""
    spec, stream = _spec("trainee"), _stream(3)
    history = _live(spec, stream)
    kept = tuple(s for s in history.snapshots if s.version != 3)
    verdict = _verify(ModelHistory("ctr", kept, 0), 4, spec, stream)
    assert verdict.start == "scratch"
    assert verdict.detail.endswith(
        "gate: verdict not compared: recomputed from scratch, not from its parent"
    ), verdict.detail


def _judged_candidate(history: ModelHistory) -> tuple[PublishedSnapshot, int]:
    """A version the candidate judge judged, and where it cut the next candidate."""
    for published in history.snapshots:
        state = opened(published.snapshot, KEY) or {}
        if "gate_log_loss" in published.snapshot["metrics"] and "cut_at" in state:
            return published, int(state["cut_at"])
    raise AssertionError("no judged candidate")


def test_a_candidate_whose_judging_examples_are_not_all_in_the_log_is_not_judged() -> None:
    spec, stream = _spec("candidate"), _stream(3)
    history = _live(spec, stream)
    judged, cut = _judged_candidate(history)
    short = stream[: (judged.snapshot["trained_examples"] + cut) // 2]
    verdict = _verify(history, judged.version, spec, short)
    assert verdict.identical, verdict.detail
    assert f"verdict not compared: the log holds {len(short):,} of the {cut:,} examples" in (
        verdict.detail
    )


def test_a_candidate_whose_gate_state_does_not_open_differs() -> None:
    spec, stream = _spec("candidate"), _stream(3)
    history = _live(spec, stream)
    judged, cut = _judged_candidate(history)
    resealed = {
        **judged.snapshot,
        "gate_state": sealed({"judge": "candidate", "cut_at": cut}, "another", KEY),
    }
    snapshots = tuple(
        PublishedSnapshot(resealed, None) if s is judged else s for s in history.snapshots
    )
    verdict = _verify(ModelHistory("ctr", snapshots, 0), judged.version, spec, stream)
    assert not verdict.identical
    assert "gate: the gate's state does not open (gate_state's MAC does not match" in (
        verdict.detail
    )
