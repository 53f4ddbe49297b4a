"""The lab: the simulated world as the agents' topics, in virtual time, through the real
collector mapping, serdes, preprocess and label-join."""

from __future__ import annotations

import functools
import gc
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest

from streamlearn.collector.mapping import RequestContext, map_item
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.settings import Settings
from streamlearn.simulate.changes import Change
from streamlearn.simulate.lab import (
    DEFAULT_START_MS,
    TOPIC_ORDER,
    Lab,
    Serving,
    lab_records,
)
from streamlearn.simulate.lab_log import LabRecord
from streamlearn.simulate.traffic import Hit, Traffic, TrafficConfig, seeded_ids
from streamlearn.simulate.truth import Truth

CONFIG = TrafficConfig(rate=20.0, users=300, seed=2)
SECONDS = 240.0
HORIZON_S, LATENESS_S = 60.0, 30.0
SETTINGS = Settings(label_horizon_s=HORIZON_S, label_allowed_lateness_s=LATENESS_S)


@functools.cache
def _lab(config: TrafficConfig = CONFIG, serving: Serving | None = None) -> Lab:
    lab = Lab(config, settings=SETTINGS, serving=serving)
    lab.run(SECONDS)
    return lab


@functools.cache
def _records() -> list[LabRecord]:
    return _lab().records()


def _of(topic: str) -> list[LabRecord]:
    return [r for r in _records() if r.topic == topic]


@functools.cache
def _hits() -> list[Hit]:
    """The same world's hits, from the traffic alone."""
    return Traffic(CONFIG, DEFAULT_START_MS, seeded_ids(CONFIG.seed)).until(SECONDS)


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def test_records_come_in_time_order_and_encode_as_they_decode() -> None:
    records = _records()
    assert {r.topic for r in records} == set(TOPIC_ORDER)
    order = [(r.at_ms, TOPIC_ORDER.index(r.topic)) for r in records]
    assert order == sorted(order)
    assert records[0].at_ms >= DEFAULT_START_MS
    assert records[-1].at_ms <= DEFAULT_START_MS + SECONDS * 1000
    lab = _lab()
    for topic in TOPIC_ORDER:
        serde = lab.cluster.catalogue.topic(topic).serde(lab.registry)
        for record in _of(topic)[:300]:
            assert serde.encode(record.value) == record.raw
    counts = Counter(r.topic for r in records)
    assert counts["telemetry.events"] == lab.counts.events
    assert counts["telemetry.predictions"] == lab.counts.predictions
    assert counts["telemetry.feedback"] == lab.counts.feedback


def test_events_are_what_the_collector_makes_of_the_hits_it_accepts() -> None:
    hits = _hits()
    accepted = [h for h in hits if h.kind != "malformed"]
    lab = _lab()
    assert lab.counts.refused == sum(h.kind == "malformed" for h in hits) > 0
    assert lab.counts.hits == dict(Counter(h.kind for h in hits))
    events = _of("telemetry.events")
    assert len(events) == len(accepted)
    for index, (hit, record) in enumerate(zip(accepted, events, strict=True)):
        received = datetime.fromtimestamp((DEFAULT_START_MS + int(hit.at_s * 1000)) / 1000, UTC)
        context = RequestContext(received, hit.actor.ip, hit.actor.user_agent, "simulator")
        expected = map_item(hit.item, index, context, reject_unknown=True).record
        decoded = dict(record.value, event_id=str(record.value["event_id"]))
        assert decoded == expected
        assert record.key == hit.actor.user_id
        assert record.at_ms == _ms(expected["received_ts"])


def test_a_prediction_per_slot_with_its_features_and_the_pre_change_truth() -> None:
    lab = _lab()
    slots = [s for h in _hits() if h.kind == "page_view" for s in h.slots]
    predictions = _of("telemetry.predictions")
    assert len(predictions) == len(slots) > 500
    assert [lab.served[p.key] for p in predictions] == slots
    for record in predictions:
        value, slot = record.value, lab.served[record.key]
        assert value["request_id"] == record.key
        assert value["features"] == slot.features
        assert value["context"] == slot.context
        assert value["score"] == Truth().p_click(slot.features, slot.context, 0)
        assert (value["model_name"], value["model_version"]) == ("ctr", 1)
        assert (value["arm"], value["experiment"], value["decision"]) == (None, None, None)
        assert (value["degraded"], value["worker_version"], value["latency_ms"]) == (
            False,
            "lab",
            0.0,
        )
        assert _ms(value["served_ts"]) == record.at_ms


def test_feedback_follows_each_seen_slots_outcome() -> None:
    lab = _lab()
    kinds: dict[str, list[str]] = {}
    for record in _of("telemetry.feedback"):
        assert _ms(record.value["received_ts"]) == record.at_ms
        kinds.setdefault(record.key, []).append(record.value["kind"])
    served_at = {p.key: p.at_ms for p in _of("telemetry.predictions")}
    end_ms = DEFAULT_START_MS + SECONDS * 1000
    for request_id, slot in lab.served.items():
        if served_at[request_id] + 40_000 > end_ms:
            continue  # its feedback may still be due
        expected = []
        if slot.seen:
            expected = ["impression"] + ["click"] * slot.clicked + ["conversion"] * slot.converted
        assert kinds.get(request_id, []) == expected
    assert lab.counts.feedback_pending > 0


def test_examples_are_labelled_with_the_slots_outcomes() -> None:
    lab = _lab()
    examples = _of("training.examples")
    assert examples
    labelled = {}
    for record in examples:
        slot = lab.served[record.value["request_id"]]
        assert slot.seen
        assert record.value["label"] == float(slot.clicked)
        labelled[record.value["request_id"]] = record.value["label"]
    assert len(labelled) == len(examples), "one example per request"
    assert 0 < sum(labelled.values()) < len(labelled)
    # Every seen slot whose horizon closed well before the end has its example.
    served_at = {p.key: p.at_ms for p in _of("telemetry.predictions")}
    closed_by = DEFAULT_START_MS + (SECONDS - HORIZON_S - LATENESS_S - 5) * 1000
    due = {k for k, s in lab.served.items() if s.seen and served_at[k] < closed_by}
    assert due <= set(labelled)
    # Negatives are emitted once the horizon closed (+ lateness), in virtual time.
    for record in examples:
        served = served_at[record.value["request_id"]]
        if record.value["label"] == 0.0:
            assert record.at_ms >= served + (HORIZON_S + LATENESS_S) * 1000
        else:
            assert record.at_ms <= served + HORIZON_S * 1000 + 1000


def test_clean_events_are_the_peoples_page_views_once_each() -> None:
    clean = _of("events.clean")
    people = {
        h.item["event_id"] for h in _hits() if h.kind == "page_view" and h.actor.kind == "human"
    }
    kept = Counter(str(r.value["event_id"]) for r in clean)
    assert max(kept.values()) == 1, "duplicates dropped"
    users = {r.value["user_id"] for r in clean}
    assert not any(user.startswith("crawler-") for user in users)
    assert people <= set(kept)
    from_bots = set(kept) - people
    users_of = {str(r.value["event_id"]): r.value["user_id"] for r in clean}
    assert all(users_of[event_id].startswith("b-") for event_id in from_bots)
    # Behavioural bots pass until a burst gives them away: a minority of their pages.
    bot_pages = sum(h.kind == "page_view" and h.actor.kind == "burst_bot" for h in _hits())
    assert len(from_bots) < 0.7 * bot_pages
    events: dict[str, int] = {}
    for record in _of("telemetry.events"):
        events.setdefault(str(record.value["event_id"]), record.at_ms)
    for record in clean:
        # Emitted at the end of the simulated second the event was first received in.
        assert 0 <= record.at_ms - events[str(record.value["event_id"])] <= 1000


def test_the_same_config_gives_the_same_records() -> None:
    config = TrafficConfig(rate=10.0, users=100, seed=4)
    first = lab_records(config, 90, settings=SETTINGS)
    again = lab_records(config, 90, settings=SETTINGS)
    assert first == again
    assert [r.value for r in first[:50]] == [r.value for r in again[:50]]
    other = lab_records(TrafficConfig(rate=10.0, users=100, seed=5), 90, settings=SETTINGS)
    assert [r.raw for r in other] != [r.raw for r in first]


def test_a_broken_model_ranks_backwards_under_a_new_version_from_its_second() -> None:
    config = TrafficConfig(rate=20.0, users=300, seed=2, changes=(Change("broken_model", 120),))
    lab = _lab(config)
    at_ms = DEFAULT_START_MS + 120_000
    predictions = lab.records(["telemetry.predictions"])
    assert predictions
    for record in predictions:
        slot = lab.served[record.key]
        before = record.at_ms < at_ms
        assert record.value["score"] == (slot.p_click if before else 1.0 - slot.p_click)
        assert record.value["model_version"] == (1 if before else 2)
    assert len({r.at_ms < at_ms for r in predictions}) == 2
    # The traffic itself is the unchanged world's.
    assert [r.raw for r in lab.records(["telemetry.events"])] == [
        r.raw for r in _of("telemetry.events")
    ]


def test_after_concept_drift_the_model_keeps_the_old_truth() -> None:
    config = TrafficConfig(rate=20.0, users=300, seed=2, drift_at_s=120.0)
    lab = _lab(config)
    wrong = 0
    for record in lab.records(["telemetry.predictions"]):
        slot = lab.served[record.key]
        assert record.value["score"] == Truth().p_click(slot.features, slot.context, 0)
        wrong += record.value["score"] != slot.p_click
    assert wrong > 100


def test_arms_by_a_stable_hash_of_the_user() -> None:
    serving = Serving(arms=("a", "b"), experiment="colour", model_version=7)
    lab = Lab(TrafficConfig(rate=10.0, users=100, seed=4), settings=SETTINGS, serving=serving)
    lab.run(60)
    arms: dict[str, set[str]] = {}
    for record in lab.records(["telemetry.predictions"]):
        value = record.value
        assert value["experiment"] == "colour"
        assert value["model_version"] == 7
        arms.setdefault(value["user_id"], set()).add(value["arm"])
    assert all(len(seen) == 1 for seen in arms.values())
    assert set().union(*arms.values()) == {"a", "b"}


class _Counting(Step):
    """An extra step: counts clean events and examples, notes its ticks' times."""

    name = "counting"
    inputs = ("events.clean", "training.examples")
    outputs: ClassVar[tuple[str, ...]] = ()
    tick_every_s = 10.0

    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.ticks: list[int] = []

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        self.seen[records[0].topic] += len(records)

    def tick(self, partition: int, now_ms: int, read_ms: int | None, emit: Emit) -> None:
        if partition == 0:
            self.ticks.append(now_ms)


def test_extra_steps_read_the_agents_outputs_in_the_same_virtual_time() -> None:
    lab = Lab(TrafficConfig(rate=10.0, users=100, seed=4), settings=SETTINGS)
    made: list[_Counting] = []

    def make(env: Any) -> Step:
        assert env is lab.environment
        made.append(_Counting())
        return made[-1]

    ticks: list[int] = []
    cluster = lab.run(45.5, extra_steps=[make], on_tick=lambda at: ticks.append(at.now_ms))
    [step] = made
    assert cluster is lab.cluster
    assert ticks == [DEFAULT_START_MS + s * 1000 for s in range(1, 46)] + [
        DEFAULT_START_MS + 45_500
    ]
    assert step.ticks == [DEFAULT_START_MS + s * 1000 for s in (10, 20, 30, 40)]
    assert step.seen["events.clean"] == len(cluster.messages("events.clean")) > 0
    assert step.seen["training.examples"] == len(cluster.messages("training.examples")) > 0
    assert lab.worker("counting").step is step
    lab.run(10)
    assert lab.elapsed_s == 55.5
    assert step.seen["events.clean"] == len(cluster.messages("events.clean"))
    with pytest.raises(KeyError, match="no step"):
        lab.worker("nobody")


def test_a_record_without_a_value_decodes_to_nothing() -> None:
    lab = _lab()
    serde = lab.cluster.catalogue.topic("telemetry.events").serde(lab.registry)
    record = LabRecord(0, "telemetry.events", "k", 0, 0, None, serde)
    assert record.value == {}


def test_a_run_paces_the_collector_as_the_agents_do_and_restores_it() -> None:
    # The lab keeps every prediction it judges: with Python's young threshold (700) each
    # full collection walked that growing heap, ~15 % of a long run's CPU.
    from streamlearn import garbage_collection

    before = gc.get_threshold()
    during: list[tuple[int, int, int]] = []
    Lab(CONFIG, settings=SETTINGS).run(3.0, on_tick=lambda _: during.append(gc.get_threshold()))
    assert during
    assert set(during) == {
        (garbage_collection.YOUNG_THRESHOLD, *garbage_collection.OLDER_THRESHOLDS)
    }
    assert gc.get_threshold() == before


def test_a_run_restores_the_collector_when_it_fails() -> None:
    before = gc.get_threshold()

    def fail(_: Lab) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Lab(CONFIG, settings=SETTINGS).run(2.0, on_tick=fail)
    assert gc.get_threshold() == before
