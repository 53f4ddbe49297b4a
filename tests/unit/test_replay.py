"""Replay without a broker: positions, targets, manifests, and verifying snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from streamlearn.models import SPECS, model_input, safe_pickle, verify_snapshot
from streamlearn.models.configured import configured_specs
from streamlearn.models.exceptions import BadSignature, UnknownSnapshotSpec
from streamlearn.models.online import OnlineLearner
from streamlearn.models.snapshot import recorded_spec
from streamlearn.models.spec_text import spec_differences
from streamlearn.replay.diff import (
    _compare,
    _shadow_verdicts,
    _why,
    diff_clean,
    diff_examples,
    diff_sessions,
)
from streamlearn.replay.examples import Example, PreparedRecord, ReadCounts, prepared_records
from streamlearn.replay.exceptions import PastRetentionError, ReplayError
from streamlearn.replay.history import ModelHistory, PublishedSnapshot
from streamlearn.replay.positions import (
    PartitionNotRead,
    PartitionRange,
    check_retention,
    parse_position,
    resolve,
)
from streamlearn.replay.range_start import RangeStart
from streamlearn.replay.rebuild import ModelTarget, learn, replayed_snapshot
from streamlearn.replay.shadow import plan_shadow, step_topics
from streamlearn.replay.verify import Verdict, verify_version
from streamlearn.settings import ExplicitSettings, Settings
from tests.support import click_examples

KEY = "unit-test-signing-key"
TOPIC = "training.examples"
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

# ctr's examples, with another model's and an invalid one among them, at offsets 0..
EXAMPLES: list[Example] = [(e, 0, n) for n, e in enumerate(click_examples(600, seed=5))]
EXAMPLES[10] = ({**EXAMPLES[10][0], "model_name": "conversion_value"}, 0, 10)
EXAMPLES[20] = ({**EXAMPLES[20][0], "weight": 0.0}, 0, 20)


def test_positions_parse_as_documented() -> None:
    assert parse_position("earliest") == "earliest"
    assert parse_position(" latest ") == "latest"
    assert parse_position("0:120,3:7") == {0: 120, 3: 7}
    assert parse_position("2026-11-30T10:00:00") == datetime(2026, 11, 30, 10, tzinfo=UTC)
    assert parse_position("2026-11-30T10:00:00+01:00") == datetime(2026, 11, 30, 9, tzinfo=UTC)
    with pytest.raises(ReplayError, match="expected earliest, latest"):
        parse_position("yesterday")
    with pytest.raises(ReplayError, match=r"position '2:-5': partitions and offsets are 0 or more"):
        parse_position("2:-5")
    with pytest.raises(ReplayError, match="partition 1 twice"):
        parse_position("1:5,1:7")


class _Log:
    """An offset index of one topic: partition → (first offset, end offset)."""

    def __init__(self, watermarks: dict[int, tuple[int, int]]) -> None:
        self._watermarks = watermarks

    def watermarks(self, topic: str) -> dict[int, tuple[int, int]]:
        return dict(self._watermarks)

    def offsets_for_time(
        self, topic: str, partitions: Iterable[int], timestamp_ms: int
    ) -> dict[int, int | None]:
        return {}


def test_a_position_past_the_logs_end_says_so() -> None:
    """Found by a new user: `--from 2:99999` was "the range starts at 99999, after its end
    4582", with no `--to` given (and `replay reset`, which has no range, said the same)."""
    log = _Log({0: (0, 2251), 1: (0, 10)})
    with pytest.raises(ReplayError, match=r"^t\[0\]: offset 99999 is past the log's end 2251$"):
        resolve(log, "t", {0: 99999})
    with pytest.raises(ReplayError, match=r"^t\[0\]: the range starts at 20, after its end 10$"):
        resolve(log, "t", {0: 20}, {0: 10})
    with pytest.raises(PartitionNotRead, match="only t partition"):
        resolve(log, "t", {1: 5}, partitions=[0])
    # Found by a new user: `--from 10:58` (a time of day) named "partition [10]" and no
    # more; a time is read as one only with its date.
    with pytest.raises(
        PartitionNotRead,
        match=r"name \[10\] \(P:O offsets; a time is given "
        r"with its date, e\.g\. 2026-12-07T10:58\)",
    ):
        resolve(log, "t", {10: 58}, partitions=[0])
    # The same with every partition read (`replay agents`, `replay reset`): only "t has
    # no partitions [10] (it has [0, 1])".
    with pytest.raises(
        ReplayError,
        match=r"^t has no partitions \[10\] \(it has \[0, 1\]; P:O offsets; a time is given "
        r"with its date, e\.g\. 2026-12-07T10:58\)$",
    ):
        resolve(log, "t", {10: 58})


def test_a_time_out_of_range_says_what_is_wrong() -> None:
    """`2026-13-01T00:00:00Z` got the generic "expected earliest, latest, ..."."""
    with pytest.raises(ReplayError, match=r"month must be in 1\.\.12"):
        parse_position("2026-13-01T00:00:00Z")


@pytest.mark.parametrize("into", [".", "-", "._"])
def test_a_shadow_namespace_needs_a_letter_or_digit(into: str) -> None:
    """`--into .` was taken: topics `.telemetry.events`, and the manifest file of `--into
    shadow` (replays/shadow.json)."""
    with pytest.raises(ReplayError, match="a letter or digit"):
        plan_shadow(Settings(), ["preprocess"], into, "earliest", "latest", source=_Log({}))  # type: ignore[arg-type]


def test_a_range_past_retention_names_partitions_and_what_the_log_holds() -> None:
    ranges = [PartitionRange(0, 0, 500, 200, 900), PartitionRange(1, 0, 0, 50, 50)]
    with pytest.raises(PastRetentionError) as caught:
        check_retention(TOPIC, ranges)
    message = str(caught.value)
    assert "training.examples[0] from offset 0, the log starts at 200" in message
    assert "[1]" not in message, "an empty range needs nothing from the log"
    assert "--source archive" in message
    check_retention(TOPIC, [PartitionRange(0, 200, 500, 200, 900)])


def _live(versions: list[int]) -> ModelHistory:
    """What a live learner publishes: a snapshot after each of ``versions`` examples."""
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    snapshots, position = [], 0
    for upto in versions:
        learn(learner, prepared_records(EXAMPLES[position:upto]), TOPIC)
        snapshots.append(PublishedSnapshot(learner.snapshot(NOW), None))
        position = upto
    return ModelHistory("ctr", tuple(snapshots), 0)


def _reader(examples: list[Example] = EXAMPLES) -> Any:
    def read(ranges: list[PartitionRange], counts: ReadCounts) -> Iterable[PreparedRecord]:
        for partition_range in ranges:
            for example in examples[partition_range.start : partition_range.end]:
                counts.read += 1
                yield from prepared_records([example])

    return read


def _verify(history: ModelHistory, version: int, examples: list[Example] = EXAMPLES) -> Verdict:
    published = history.version(version)
    assert published is not None
    return verify_version(
        history,
        published,
        topic=TOPIC,
        watermarks={0: (0, len(EXAMPLES))},
        specs=SPECS,
        key=KEY,
        read_examples=_reader(examples),
    )


def test_each_live_version_is_recomputed_from_its_parent_byte_for_byte() -> None:
    history = _live([200, 450, 600])
    verdicts = [_verify(history, v) for v in (1, 2, 3)]
    assert [v.identical for v in verdicts] == [True, True, True]
    assert [v.start for v in verdicts] == ["scratch", "v1", "v2"]
    # From the window before the parent's offsets (read again, not learned: which examples
    # a re-emitted copy would repeat), here the log's start.
    assert [(r.start, r.end) for r in verdicts[1].ranges] == [(0, 450)]
    # Said as what was learned (the docs' "6..75"; it printed "0..75").
    assert verdicts[1].examples_read == "[0] 200..450 (read from 0 for re-emitted copies)"
    assert verdicts[0].examples_read == "[0] 0..200"
    assert [v.examples for v in verdicts] == [198, 250, 150], (
        "not the other model's, nor the invalid"
    )


def test_a_version_whose_examples_are_past_retention_fails_as_such_not_as_a_difference() -> None:
    """Found by a new user: with `training.examples[2]` starting at 2000, `replay verify ctr
    --version 5` (parent v4 at 198) said "DIFFERS ... examples [2] 198..231 (read from 2000
    ...) (0 learned): trained_examples: 198 recomputed, 231 published" and exited 1: the
    window read again before the parent's offsets was clamped to the log's start, which
    then passed the retention check while the examples to learn were gone. An untampered
    version was called different; it is the documented past-retention error."""
    history = _live([200, 450, 600])
    published = history.version(3)
    assert published is not None
    with pytest.raises(PastRetentionError, match=r"from offset 450, the log starts at 500"):
        verify_version(
            history, published, topic=TOPIC, watermarks={0: (500, len(EXAMPLES))},
            specs=SPECS, key=KEY, read_examples=_reader(),
        )  # fmt: skip


def test_a_version_whose_parent_was_compacted_away_is_recomputed_from_scratch() -> None:
    full = _live([200, 450, 600])
    history = ModelHistory("ctr", full.snapshots[2:], 0)
    verdict = _verify(history, 3)
    assert verdict.identical
    assert verdict.start == "scratch"


def test_a_warm_started_first_version_is_recomputed_from_the_baseline_it_records() -> None:
    """A new user's honest warm start verified as DIFFERS (exit 1): v1 has no parent, so it
    was recomputed from a fresh model from offset 0, not from its baseline."""
    replayed = OnlineLearner(SPECS["ctr"], signing_key=KEY, model_name="ctr@h2")
    learn(replayed, prepared_records(EXAMPLES[300:450]), TOPIC)  # a baseline of a range
    baseline = PublishedSnapshot(replayed.snapshot(NOW), None)
    live = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    live.warm_start(baseline.snapshot)
    learn(live, prepared_records(EXAMPLES[450:600]), TOPIC)
    first = live.snapshot(NOW)
    assert first is not None
    history = ModelHistory("ctr", (PublishedSnapshot(first, None),), 0)
    found: list[tuple[str, int]] = []

    def baseline_of(name: str, version: int) -> PublishedSnapshot | None:
        found.append((name, version))
        return baseline if (name, version) == ("ctr@h2", 1) else None

    verdict = verify_version(
        history, history.snapshots[0], topic=TOPIC, watermarks={0: (0, len(EXAMPLES))},
        specs=SPECS, key=KEY, read_examples=_reader(), baseline_of=baseline_of,
    )  # fmt: skip
    assert verdict.identical, verdict.detail
    assert verdict.start == "ctr@h2 v1"
    assert found == [("ctr@h2", 1)]
    assert verdict.examples == 150
    # A baseline compacted away: said, not recomputed from scratch into a false difference.
    gone = verify_version(
        history, history.snapshots[0], topic=TOPIC, watermarks={0: (0, len(EXAMPLES))},
        specs=SPECS, key=KEY, read_examples=_reader(), baseline_of=lambda name, version: None,
    )  # fmt: skip
    assert not gone.identical
    assert gone.detail == "cannot recompute: its baseline ctr@h2 v1 is no longer on model.state"


def test_a_snapshot_from_reordered_examples_differs_and_says_how() -> None:
    # The same records, the first hundred in another order (offsets still ascending).
    reordered = [(EXAMPLES[99 - n][0], 0, n) for n in range(100)] + EXAMPLES[100:200]
    learner = OnlineLearner(SPECS["ctr"], signing_key=KEY)
    learn(learner, prepared_records(reordered), TOPIC)
    history = ModelHistory("ctr", (PublishedSnapshot(learner.snapshot(NOW), None),), 0)
    verdict = _verify(history, 1)
    assert not verdict.identical
    assert verdict.detail.startswith("payload differs: sha256 ")


def test_a_tampered_snapshot_differs_with_the_reason_it_fails_verification() -> None:
    history = _live([200])
    snapshot = dict(history.snapshots[0].snapshot)
    snapshot["payload"] = snapshot["payload"][:-1] + bytes([snapshot["payload"][-1] ^ 1])
    with pytest.raises(BadSignature) as caught:
        verify_snapshot(snapshot, KEY)
    tampered = ModelHistory("ctr", (PublishedSnapshot(snapshot, str(caught.value)),), 0)
    verdict = _verify(tampered, 1)
    assert not verdict.identical
    assert "fails verification" in verdict.detail
    assert "bad_signature" in verdict.detail


def test_missing_examples_show_as_a_different_count() -> None:
    history = _live([200])
    verdict = _verify(history, 1, EXAMPLES[:150] + [EXAMPLES[0]] * 50)
    assert not verdict.identical
    assert verdict.detail.startswith("trained_examples: ")


def test_a_replayed_snapshot_carries_a_signed_manifest_and_verifies_from_its_start() -> None:
    target = ModelTarget(SPECS["ctr"], "ctr", None, "ctr@replayed")
    learner = target.learner(KEY, None)
    learn(learner, prepared_records(EXAMPLES[300:600]), TOPIC)
    ranges = (PartitionRange(0, 300, 600, 0, 600),)
    snapshot = replayed_snapshot(
        learner, target, TOPIC, ranges, version=1, created=NOW, key=KEY, key_id=None
    )
    assert snapshot["model_name"] == "ctr@replayed"
    assert snapshot["parent_version"] is None
    assert snapshot["offsets"] == [{"topic": TOPIC, "partition": 0, "offset": 600}]
    assert (
        '"inputs":[{"end":600,"partition":0,"start":300,"topic":"training.examples"}]'
        in (snapshot["manifest"])
    )
    verify_snapshot(snapshot, KEY)
    with pytest.raises(BadSignature):
        verify_snapshot({**snapshot, "manifest": snapshot["manifest"].replace("300", "0")}, KEY)
    history = ModelHistory("ctr@replayed", (PublishedSnapshot(snapshot, None),), 0)
    verdict = _verify(history, 1)
    assert verdict.identical, verdict.detail
    assert [(r.start, r.end) for r in verdict.ranges] == [(300, 600)]


def test_a_replay_is_the_same_model_as_river_trained_in_process() -> None:
    spec = SPECS["ctr"]
    target = ModelTarget(spec, "ctr", None, "ctr")
    learner = learn(target.learner(KEY, None), prepared_records(EXAMPLES), TOPIC)
    river = spec.new_model(0)

    for example, _, _ in EXAMPLES:
        if example["model_name"] == "ctr" and example["weight"] > 0:
            spec.learn(river, model_input(example["features"]), example["label"])
    assert safe_pickle.dumps(learner.model) == safe_pickle.dumps(river)


def test_targets_name_shadows_and_arms() -> None:
    snapshot = {"model_name": "ctr@b", "manifest": None}
    target = ModelTarget.of_snapshot(snapshot, SPECS["ctr"])
    assert (target.examples_of, target.arm, target.published_as) == ("ctr", "b", "ctr@b")


def test_a_snapshot_is_recomputed_with_the_label_horizon_it_records() -> None:
    # `up --simulate` runs a 20 s horizon; the command verifying has the default.
    spec = replace(SPECS["ctr"], label=replace(SPECS["ctr"].label, horizon_s=20.0))
    learner = OnlineLearner(spec, signing_key=KEY)
    learn(learner, prepared_records(EXAMPLES[:200]), TOPIC)
    history = ModelHistory("ctr", (PublishedSnapshot(learner.snapshot(NOW), None),), 0)
    assert recorded_spec(history.snapshots[0].snapshot) == spec
    assert _verify(history, 1).identical
    another = spec.describe().replace("LogisticRegression", "Perceptron")
    assert another != spec.describe()
    unknown = {**history.snapshots[0].snapshot, "spec": another}
    with pytest.raises(UnknownSnapshotSpec):
        recorded_spec(unknown)


def test_shadow_roots_are_the_inputs_no_replayed_agent_produces() -> None:
    assert step_topics(["preprocess", "sessionise"]) == (
        ["telemetry.events"],
        ["telemetry.events", "events.clean"],
    )
    assert step_topics(["label-join"])[0] == ["telemetry.predictions", "telemetry.feedback"]
    with pytest.raises(ReplayError, match="unknown agents"):
        step_topics(["monitor"])


def test_agents_named_twice_or_none_are_refused_before_anything_is_copied() -> None:
    """Found by a new user: `replay agents --only preprocess,preprocess` copied 7,904
    records into the namespace, then its worker refused the list ("a step is listed
    twice"), leaving a partial namespace to drop; `--only ,` said "nothing to replay:  hold
    no records in that range"."""
    with pytest.raises(ReplayError, match=r"--only names preprocess twice"):
        step_topics(["preprocess", "sessionise", "preprocess"])
    with pytest.raises(ReplayError, match=r"--only names no agent; it runs \['preprocess'"):
        step_topics([])


def test_a_diff_matches_by_identity_and_ignores_what_differs_by_construction() -> None:
    shadow = {"a": {"event_id": "a", "url": "/x", "source_offset": 1}, "b": {"event_id": "b"}}
    live = {"a": {"event_id": "a", "url": "/x", "source_offset": 901}, "c": {"event_id": "c"}}
    result = _compare("events.clean", "event_id", shadow, live)
    assert (result.only_live, result.only_shadow, result.changed) == (["c"], ["b"], [])
    assert result.differs
    changed = _compare("events.clean", "event_id", shadow, {**live, "a": {"url": "/y"}})
    assert changed.changed == ["a"]
    assert changed.lines()[0].startswith("events.clean: 2 shadow, 2 live (event_id)")


def test_filter_reasons_come_from_the_preprocess_step_run_again_with_the_replay_settings() -> None:
    from streamlearn.settings import Settings

    template = {
        "event_type": "page_view", "user_id": "u1", "session_hint": None,
        "client_ts": NOW, "received_ts": NOW, "url": "https://shop.example/p",
        "referrer": None, "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) "
        "Gecko/20100101 Firefox/133.0", "ip": "203.0.113.9", "app_version": "1",
        "properties": {}, "context": {},
    }  # fmt: skip
    e0, e1, e2 = (f"00000000-0000-4000-8000-00000000000{n}" for n in range(3))
    events = {
        0: [(n, {**template, "event_id": event_id}) for n, event_id in enumerate([e0, e1, e2])]
    }
    events[0].append((3, {**template, "event_id": e0}))  # the first one again
    strict = Settings(bot_max_events_per_user=1, bot_min_interval_ms=0)
    verdicts = _shadow_verdicts(strict, events)
    assert verdicts == {e1: "user_rate", e2: "user_rate", e0: ""}
    assert _why([e1, e2, e0, "zz"], verdicts, "shadow") == (
        "filtered in shadow: bot rule user_rate 2, duplicate 1, unknown 1"
    )


class _Sides:
    """Both namespaces' decoded records, in memory (all in partition 0)."""

    def __init__(self, records: dict[tuple[str, str], list[dict[str, Any]]]) -> None:
        self.held = records

    def records(self, topic: str, side: str) -> list[dict[str, Any]]:
        return self.held.get((topic, side), [])

    def located(self, topic: str, side: str) -> list[tuple[int, int, dict[str, Any]]]:
        return [(0, offset, record) for offset, record in enumerate(self.records(topic, side))]


def test_a_replay_of_outputs_the_diff_does_not_compare_is_not_said_to_have_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: `replay agents --only learner --into le1.` then `replay diff
    --into le1.` printed only "no differences" (exit 0), having compared nothing: the
    learner's snapshots are no output `replay diff` compares."""
    from streamlearn.replay import diff
    from streamlearn.replay.diff import diff_replay

    monkeypatch.setattr(diff, "_Sides", lambda *arguments: _Sides({}))
    manifest = {
        "agents": ["learner"],
        "live_prefix": "",
        "shadow_prefix": "le1.",
        "inputs": {"training.examples": [
            {"partition": 2, "start": 0, "end": 2447, "log_start": 0, "log_end": 2447}
        ]},
        "settings": {},
    }  # fmt: skip
    checked_with = r"ran learner; .*STREAMLEARN_TOPIC_PREFIX=le1\. streamlearn replay verify"
    with pytest.raises(ReplayError, match=rf"nothing to compare: .*{checked_with}"):
        diff_replay(ExplicitSettings(), None, manifest)  # type: ignore[arg-type]


def test_examples_are_compared_where_their_horizon_closed_inside_the_range() -> None:
    from datetime import timedelta

    def served(n: int) -> dict[str, Any]:
        return {"request_id": f"r{n}", "served_ts": NOW + timedelta(seconds=10 * n)}

    def example(n: int, label: float) -> dict[str, Any]:
        return {"request_id": f"r{n}", "label": label}

    predictions = [served(n) for n in range(10)]  # served at 0..90 s
    sides = _Sides(
        {
            ("telemetry.predictions", "shadow"): predictions,
            ("telemetry.feedback", "shadow"): [{"received_ts": NOW + timedelta(seconds=100)}],
            # r0..r4 decided in both; r1 labelled differently; r3 only live; r8 is at the
            # range's end (its horizon, 30 s, is not over by the last record at 100 s).
            ("training.examples", "shadow"): [example(n, 1.0) for n in (0, 1, 2, 4)],
            ("training.examples", "live"): [
                *(example(n, 1.0) for n in (0, 2, 3, 4)),
                example(1, 0.0),
                example(8, 1.0),
            ],
        }
    )
    result = diff_examples(sides, horizon_s=25.0, lateness_s=5.0)  # type: ignore[arg-type]
    assert (result.only_live, result.only_shadow, result.changed) == (["r3"], [], ["r1"])
    assert (result.shadow, result.live) == (4, 5)


def test_a_range_too_short_for_any_session_is_not_compared_rather_than_equal() -> None:
    """A 150 s `up --simulate` replayed printed "0 shadow, 0 live", a window ending before
    it began, and "no differences": sessions are compared a gap away from the range's
    edges, and 150 s of events leaves no such window (found by using `replay diff`)."""
    from datetime import timedelta

    events = [{"event_ts": NOW + timedelta(seconds=s)} for s in range(0, 150, 10)]
    sides = _Sides({("events.clean", "shadow"): events})
    result = diff_sessions(sides, gap_s=1800.0, lateness_s=60.0)  # type: ignore[arg-type]
    assert result.not_compared is not None
    assert result.lines() == [
        "events.sessions: not compared: the range holds 2m20s of event time; sessions are "
        "compared from a session gap (30m00s) after its first event to gap + lateness "
        "(31m00s) before its last event, which leaves no time"
    ]
    # Past the first record, the edge is said as it is taken.
    late = diff_sessions(sides, gap_s=1800.0, lateness_s=60.0, start=NOW)  # type: ignore[arg-type]
    assert "after its first record's receipt (+1m00s a clock may run ahead)" in late.lines()[0]
    empty = diff_sessions(_Sides({}), gap_s=1800.0, lateness_s=60.0)  # type: ignore[arg-type]
    assert empty.lines() == ["events.sessions: not compared: the shadow has no clean events"]


def test_examples_none_of_whose_horizons_closed_in_the_range_are_not_compared() -> None:
    from datetime import timedelta

    predictions = [{"request_id": "r0", "served_ts": NOW}]
    feedback = [{"received_ts": NOW + timedelta(seconds=10)}]
    sides = _Sides(
        {
            ("telemetry.predictions", "shadow"): predictions,
            ("telemetry.feedback", "shadow"): feedback,
        }
    )
    result = diff_examples(sides, horizon_s=25.0, lateness_s=5.0)  # type: ignore[arg-type]
    assert result.lines() == [
        "training.examples: not compared: no prediction's label horizon (+ lateness, 30s) "
        "closed within the range"
    ]
    none = diff_examples(_Sides({}), horizon_s=25.0, lateness_s=5.0)  # type: ignore[arg-type]
    assert none.lines() == ["training.examples: not compared: the shadow has no predictions"]


@pytest.mark.parametrize("shadow", ["a b", "", "x@y", "-lead"])
def test_a_shadow_name_that_is_no_arm_name_is_refused(shadow: str) -> None:
    """`--shadow "a b"` was taken: ctr@a b, a model name an experiment arm cannot route to
    (`experiments set` refuses such names)."""
    from streamlearn.replay.model import _target

    with pytest.raises(ReplayError, match=f"shadow name {shadow!r}: letters, digits"):
        _target(Settings(), "ctr", None, shadow)


def _clean_event(n: int, at_s: float, offset: int) -> dict[str, Any]:
    from datetime import timedelta

    return {
        "event_id": f"e{n}", "user_id": f"u{n}", "url": "/p", "event_ts": NOW,
        "received_ts": NOW + timedelta(seconds=at_s), "source_partition": 0,
        "source_offset": offset,
    }  # fmt: skip


def test_a_range_past_the_first_record_leaves_out_what_live_judged_with_earlier_input() -> None:
    """Replayed from offset 100 (``--from 0:100``), the shadow took for a first copy what
    live had seen at offset 40, and a user's first events in the range for all there was
    of them (live also counted their earlier ones for the bot rules): both came out as
    differences of the same records with the same settings (found by using `replay diff`)."""
    from datetime import timedelta

    shadow_clean = [_clean_event(1, 0.0, 0), _clean_event(2, 30.0, 30), _clean_event(3, 90.0, 90)]
    live_clean = [
        {**_clean_event(1, -5.0, 40), "url": "/first-copy"},  # its first copy, before the range
        _clean_event(3, 90.0, 190),
    ]
    inputs = [{"event_id": f"e{n}", "received_ts": NOW + timedelta(seconds=s)}
              for n, s in ((1, 0.0), (2, 30.0), (3, 90.0))]  # fmt: skip
    sides = _Sides(
        {
            ("telemetry.events", "shadow"): inputs,
            ("events.clean", "shadow"): shadow_clean,
            ("events.clean", "live"): live_clean,
        }
    )
    recorded = {"bot_rate_window_s": 60.0, "bot_burst_length": 5, "bot_min_interval_ms": 50.0}
    start = RangeStart(offsets={0: 100}, received={0: NOW})
    result = diff_clean(sides, recorded, start)  # type: ignore[arg-type]
    assert (result.only_live, result.only_shadow, result.changed) == ([], [], [])
    assert (result.shadow, result.live) == (1, 1)
    assert result.notes == [
        "left out near the range's start (offsets 0:100): 1 duplicate whose first copy is "
        "before it, 1 event received within the bot rules' window (1m00s) of its first records"
    ]
    # From the first record of every partition nothing is left out: what differs, differs.
    whole = diff_clean(sides, recorded, None)  # type: ignore[arg-type]
    assert whole.changed == ["e1"]


def test_a_range_whose_clean_events_are_all_left_out_is_not_compared() -> None:
    """Found by a new user: `replay agents --only preprocess --from <40 s before the end>`,
    then `replay diff` said "events.clean: 0 shadow, 0 live ... no differences" and exit 0:
    all 3,309 events were within the bot rules' window of the range's start, so nothing
    had been compared."""
    from datetime import timedelta

    clean = [_clean_event(1, 10.0, 100), _clean_event(2, 50.0, 101)]
    inputs = [{"event_id": f"e{n}", "received_ts": NOW + timedelta(seconds=s)}
              for n, s in ((1, 10.0), (2, 50.0))]  # fmt: skip
    sides = _Sides(
        {
            ("telemetry.events", "shadow"): inputs,
            ("events.clean", "shadow"): clean,
            ("events.clean", "live"): clean,
        }
    )
    recorded = {"bot_rate_window_s": 60.0, "bot_burst_length": 5, "bot_min_interval_ms": 50.0}
    start = RangeStart(offsets={0: 100}, received={0: NOW})
    result = diff_clean(sides, recorded, start)  # type: ignore[arg-type]
    assert result.not_compared == (
        "left out near the range's start (offsets 0:100): 0 duplicates whose first copy is "
        "before it, 2 events received within the bot rules' window (1m00s) of its first "
        "records, which leaves none"
    )


def test_a_late_event_does_not_pull_the_sessions_edge_back_past_the_ranges_start() -> None:
    """The edge was the shadow's earliest event time plus a gap: one old-stamped event
    in a range starting past the first record compared sessions whose earlier events live
    had read before the range."""
    from datetime import timedelta

    def at(minutes: float) -> datetime:
        return NOW + timedelta(minutes=minutes)

    events = [{"event_ts": at(m)} for m in range(0, 240, 5)]
    events.append({"event_ts": at(-600)})  # a phone back online with yesterday's events
    sessions = {
        ("events.sessions", "shadow"): [
            {"session_id": "u1:a", "start_ts": at(20), "end_ts": at(30), "events": 3},
            {"session_id": "u2:b", "start_ts": at(100), "end_ts": at(120), "events": 2},
        ],
        ("events.sessions", "live"): [
            {"session_id": "u1:a", "start_ts": at(20), "end_ts": at(30), "events": 5},
            {"session_id": "u2:b", "start_ts": at(100), "end_ts": at(120), "events": 2},
        ],
    }
    sides = _Sides({("events.clean", "shadow"): events, **sessions})
    result = diff_sessions(sides, 1800.0, 60.0, start=NOW)  # type: ignore[arg-type]
    assert (result.only_live, result.only_shadow, result.changed) == ([], [], [])
    assert (result.shadow, result.live) == (1, 1)
    # From the first record, the same sessions are compared from the earliest event.
    whole = diff_sessions(sides, 1800.0, 60.0)  # type: ignore[arg-type]
    assert whole.changed == ["u1:a"]


def test_where_a_range_starts_is_read_from_its_offsets_and_first_records() -> None:
    from datetime import timedelta

    from streamlearn.replay.range_start import range_start

    ranges = [
        {"partition": 0, "start": 0, "end": 10, "log_start": 0, "log_end": 10},
        {"partition": 1, "start": 7, "end": 9, "log_start": 5, "log_end": 9},
        {"partition": 2, "start": 3, "end": 3, "log_start": 3, "log_end": 3},
    ]
    firsts = [(0, 0, {"received_ts": NOW}), (1, 7, {"received_ts": NOW + timedelta(seconds=5)})]
    assert range_start(ranges, firsts) == RangeStart(
        offsets={1: 7}, received={1: NOW + timedelta(seconds=5)}
    )
    assert range_start(ranges[:1], firsts[:1]) is None  # from the first record ever
    # One record from a host whose clock runs six hours ahead does not move the start (the
    # median of the first ones does not), and epoch ms (a writer schema without the logical
    # type) read as the same moment.
    ahead = NOW + timedelta(hours=6)
    millis = int((NOW + timedelta(seconds=2)).timestamp() * 1000)
    several = [(1, 7, {"received_ts": ahead}), (1, 8, {"received_ts": NOW}),
               (1, 9, {"received_ts": millis})]  # fmt: skip
    assert range_start(ranges, several) == RangeStart(
        offsets={1: 7}, received={1: NOW + timedelta(seconds=2)}
    )


def test_a_session_retracted_live_is_not_one_the_shadow_misses() -> None:
    """Live, a late event merged session s2 into s1 (s2's newest record a retraction,
    ``merged_into`` s1); the shadow, reading the events in order, made s1 whole at once.
    The two sides hold the same sessions."""
    from datetime import timedelta

    def session(name: str, merged_into: str | None = None) -> dict[str, Any]:
        return {
            "session_id": name,
            "start_ts": NOW + timedelta(hours=1),
            "end_ts": NOW + timedelta(hours=2),
            "event_count": 3,
            "merged_into": merged_into,
        }

    events = [{"event_ts": NOW + timedelta(hours=h)} for h in range(5)]
    sides = _Sides(
        {
            ("events.clean", "shadow"): events,
            ("events.sessions", "shadow"): [session("s1")],
            ("events.sessions", "live"): [session("s1"), session("s2"), session("s2", "s1")],
        }
    )
    result = diff_sessions(sides, 1800.0, 60.0)  # type: ignore[arg-type]
    assert (result.only_live, result.only_shadow, result.changed) == ([], [], [])
    assert (result.shadow, result.live) == (1, 1)


def test_a_spec_refusal_names_what_differs_not_both_whole_texts() -> None:
    """Found by a new user: the refusal printed both spec texts whole (~900 characters) and
    left the reader to find the one setting that differed."""
    live = configured_specs(ExplicitSettings(models=["ctr"], label_horizon_s=20))["ctr"].describe()
    ours = configured_specs(ExplicitSettings(models=["ctr"], label_horizon_s=1800))[
        "ctr"
    ].describe()
    assert spec_differences(live, ours) == ["label.horizon_s 20 there, 1800 here"]
    assert spec_differences(live, "not json") == ["the spec text (not JSON)"]
    wider = json.dumps({**json.loads(live), "revision": 9, "extra": 1})
    assert spec_differences(live, wider) == [
        "extra absent there, 1 here",
        "revision 2 there, 9 here",
    ]


def test_a_replays_progress_reaches_every_record_read_undecodable_ones_too() -> None:
    """Found by a new user: `replay model` over a range with undecodable records ended its
    progress line at 99 %: only the examples handed to the learner advanced it."""
    from streamlearn.replay.model import ModelReplayPlan, run_model_replay
    from streamlearn.runtime.topic_reader import TopicRecord
    from streamlearn.serde import InMemoryRegistry
    from streamlearn.topology.catalogue import TopicCatalogue

    settings = Settings(model_signing_key=KEY)
    registry = InMemoryRegistry()
    serde = TopicCatalogue.from_settings(settings).topic("training.examples").serde(registry)
    records = [
        TopicRecord(0, offset, None, b"\x00garbage" if offset % 50 == 7 else serde.encode(e), 0)
        for e, _, offset in EXAMPLES[:200]
    ]

    class Source:
        name, holder = "archive", "the archive holds"

        def read(self, topic: str, ranges: Any) -> Iterable[TopicRecord]:
            return iter(records)

    plan = ModelReplayPlan(
        target=ModelTarget(SPECS["ctr"], "ctr", None, "ctr@replayed"),
        topic=TOPIC,
        ranges=(PartitionRange(0, 0, 200, 0, 200),),
        version=1,
        publish=False,
        source=Source(),  # type: ignore[arg-type]
    )
    advanced: list[int] = []
    result = run_model_replay(settings, registry, plan, advanced.append)
    assert result.counts.undecodable == 4
    assert sum(advanced) == plan.records == 200


def test_records_under_a_models_key_that_are_no_snapshot_are_said(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: bytes that decode to no snapshot, and a tombstone, under `ctr`
    on model.state, and `replay verify ctr --all` said "each is exactly what its inputs
    produce" (exit 0): the undecodable ones were counted and never said, and a newest
    record that is a tombstone (or garbage) is one after which compaction removes every
    version of the model. The history says both."""
    from streamlearn.replay import history as history_module
    from streamlearn.serde import InMemoryRegistry
    from streamlearn.topology.catalogue import TopicCatalogue

    serde = TopicCatalogue.from_settings(Settings()).topic("model.state").serde(InMemoryRegistry())
    snapshots = _live([200, 450])
    good = [serde.encode(s.snapshot) for s in snapshots.snapshots]
    # A tombstone under ctr~newest is the gate's routine (a promoted version deletes it).
    records = [(b"ctr", good[0]), (b"ctr", b"\x00\x00\x00\x00\x07garbage"), (b"ctr", good[1]),
               (b"ctr~newest", None), (b"ctr", None)]  # fmt: skip
    monkeypatch.setattr(history_module, "read_to_end", lambda settings, topic: iter(records))
    found = history_module.model_history(Settings(), serde, "model.state", "ctr", KEY)
    assert [s.version for s in found.snapshots] == [1, 2]
    assert found.undecodable == 1
    assert found.unusable == (
        "1 record under 'ctr' that decodes to no snapshot",
        "the newest record under 'ctr' is a tombstone: compaction removes every version before it",
    )
    records[-1:] = []
    clean = history_module.model_history(Settings(), serde, "model.state", "ctr", KEY)
    assert clean.unusable == ("1 record under 'ctr' that decodes to no snapshot",)


def test_a_replays_summary_accounts_for_every_record_read() -> None:
    """Found by a new user: "learned 1,030 examples (1,101 records read, 1 undecodable)":
    70 records, 50 re-emitted copies and 20 invalid examples, went unsaid."""
    from streamlearn.models.online import LearnerCounters
    from streamlearn.replay.model import records_read

    counts = ReadCounts()
    counts.read, counts.undecodable = 1_101, 1
    learner = LearnerCounters(learned=1_030, copies=50, invalid=20)
    line = records_read(counts, learner)
    assert line == (
        "1,101 records read: 1,030 learned, 50 copies of an example read before, "
        "20 invalid (a label or weight out of range), 1 undecodable"
    )
    assert records_read(ReadCounts(), LearnerCounters()) == "0 records read: 0 learned"
