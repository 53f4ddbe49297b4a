"""The label join on its own: every path of served → impression → outcome, and replays."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.agents.labels import LabelJoiner
from streamlearn.agents.residuals import ResidualAggregator
from streamlearn.models import SPECS
from streamlearn.models.specs import FeedbackStrategy, ModelSpec
from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import AvroSerde, InMemoryRegistry

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
HORIZON = timedelta(seconds=1800)  # ctr: click_within_30m
LATENESS = timedelta(seconds=60)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def prediction(request_id: str, served_s: float = 0, **overrides: Any) -> dict[str, Any]:
    record = {
        "request_id": request_id,
        "user_id": "u-1",
        "model_name": "ctr",
        "model_version": 4,
        "experiment": "exp",
        "arm": "b",
        "features": {"price": 12.5, "n": 3, "mobile": True, "cat": "books", "gone": None},
        "context": {"placement": "top"},
        "score": 0.25,
        "decision": "show",
        "degraded": False,
        "degraded_reason": None,
        "served_ts": _at(served_s),
        "worker_version": "0.1.0",
        "latency_ms": 1.5,
    }
    record.update(overrides)
    return record


def feedback(
    request_id: str, kind: str, received_s: float, value: float | None = None, **overrides: Any
) -> dict[str, Any]:
    record = {
        "request_id": request_id,
        "event_id": str(uuid.uuid4()),
        "kind": kind,
        "value": value,
        "user_id": "u-1",
        "client_ts": _at(received_s) - timedelta(milliseconds=400),
        "received_ts": _at(received_s),
        "app_version": "web-1",
        "properties": {},
    }
    record.update(overrides)
    return record


def with_strategy(strategy: FeedbackStrategy) -> dict[str, ModelSpec]:
    """The shipped specs, their binary labels under ``strategy``."""
    return {
        name: replace(spec, label=replace(spec.label, strategy=strategy))
        if spec.task == "binary"
        else spec
        for name, spec in SPECS.items()
    }


AS_LABELLED = with_strategy("as_labelled")


class Harness:
    """A joiner of the shipped specs, their binary labels ``as_labelled`` (each label as
    soon as it is known) unless ``specs`` says otherwise."""

    def __init__(self, specs: Mapping[str, ModelSpec] = AS_LABELLED, **options: Any) -> None:
        self.state: dict[str, dict[str, Any]] = {}
        self.joiner = LabelJoiner.for_specs(specs, self.state, **options)
        registry = InMemoryRegistry()
        topics = (
            ("telemetry.predictions", "PredictionServed"),
            ("telemetry.feedback", "Feedback"),
            ("training.examples", "TrainingExample"),
            ("model.metrics", "ModelMetrics"),
        )
        self.serdes = {name: AvroSerde.for_topic(registry, topic, name) for topic, name in topics}
        # Decoded as the agent decodes them (LabelJoinStep.plain_inputs): timestamps as
        # epoch ms, event ids as strings.
        self.plain = {
            name: AvroSerde.for_topic(registry, topic, name, logical_types=False)
            for topic, name in topics
        }
        self.examples: list[dict[str, Any]] = []

    def _through(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        return self.plain[name].decode(self.serdes[name].encode(record))

    def _keep(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Every example must be a valid TrainingExample.
        for example in examples:
            assert self._through("TrainingExample", example) == example
        self.examples.extend(examples)
        return examples

    def pred(self, record: dict[str, Any], appended_s: float | None = None) -> list[dict[str, Any]]:
        """``record`` as read from Kafka, appended by the broker at ``appended_s`` if given
        (the topology's telemetry.predictions is LogAppendTime)."""
        appended = None if appended_s is None else _ms(_at(appended_s))
        decoded = self._through("PredictionServed", record)
        return self._keep(self.joiner.on_prediction(decoded, appended))

    def fb(
        self,
        record: dict[str, Any],
        appended_s: float | None = None,
        appended_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """``record`` as read from Kafka, appended by the broker at ``appended_s`` (or
        ``appended_ms`` as on the wire) if given (the topology's telemetry.feedback is
        stamped at append: LogAppendTime)."""
        if appended_s is not None:
            appended_ms = _ms(_at(appended_s))
        return self._keep(self.joiner.on_feedback(self._through("Feedback", record), appended_ms))

    def advance(self, seconds: float) -> list[dict[str, Any]]:
        return self._keep(self.joiner.advance(_ms(_at(seconds))))

    @property
    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.joiner.counters.as_dict().items() if v}


def test_impression_then_click_is_a_positive_at_once() -> None:
    h = Harness()
    assert h.pred(prediction("r1", 0)) == []
    assert h.fb(feedback("r1", "impression", 1)) == []
    [example] = h.fb(feedback("r1", "click", 20))
    assert example == {
        "request_id": "r1",
        "model_name": "ctr",
        "model_version": 4,
        "arm": "b",
        "user_id": "u-1",
        "features": {
            "price": 12.5,
            "n": 3,
            "mobile": True,
            "cat": "books",
            "gone": None,
            "ctx.placement": "top",
        },
        "label": 1.0,
        "label_definition": "click_within_30m",
        "score": 0.25,
        "served_ts": _ms(T0),
        "impression_ts": _ms(_at(1) - timedelta(milliseconds=400)),
        "outcome_ts": _ms(_at(20) - timedelta(milliseconds=400)),
        "labelled_ts": _ms(_at(20)),
        "weight": 1.0,
    }
    # Closing the horizon later emits nothing more.
    assert h.advance(10_000) == []
    assert h.counts == {"predictions": 1, "feedback": 2, "positives": 1}


def test_click_before_impression_is_a_positive_when_the_impression_arrives() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    assert h.fb(feedback("r1", "click", 5)) == []
    [example] = h.fb(feedback("r1", "impression", 6))
    assert example["label"] == 1.0
    assert example["labelled_ts"] == _ms(_at(6))


def test_impression_without_click_is_a_negative_once_the_horizon_closes() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    h.fb(feedback("r1", "dismiss", 2))
    assert h.advance(1800) == []
    assert h.advance(1800 + 59.9) == []  # within the allowed lateness
    [example] = h.advance(1800 + 60)
    assert example["label"] == 0.0
    assert example["outcome_ts"] is None
    assert example["labelled_ts"] == _ms(T0 + HORIZON)
    assert h.counts["negatives"] == 1


def test_served_but_never_seen_is_counted_not_trained_on() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    h.pred(prediction("r2"))
    h.fb(feedback("r2", "click", 3))  # a click without an impression: lost impression?
    assert h.advance(10_000) == []
    assert h.examples == []
    assert h.counts["unseen"] == 2
    assert h.counts["unseen_with_outcome"] == 1


def test_feedback_before_its_prediction_is_held_and_applied() -> None:
    h = Harness()
    h.fb(feedback("r1", "impression", 1))
    h.fb(feedback("r1", "click", 2))
    assert h.counts["held_feedback"] == 2
    [example] = h.pred(prediction("r1", 0.5))
    assert example["label"] == 1.0
    assert example["served_ts"] == _ms(_at(0.5))


def test_held_feedback_is_bounded_by_the_horizon() -> None:
    h = Harness()
    h.fb(feedback("r1", "impression", 1))
    h.fb(feedback("r1", "click", 2))
    # The longest horizon of any label (1 h, conversion_value) plus lateness.
    assert h.advance(1 + 3600 + 59) == []
    assert "r1" in h.state
    h.advance(2 + 3600 + 60)
    assert h.state == {}
    assert h.counts["orphaned_feedback"] == 2


def test_duplicate_feedback_counts_once() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    impression = feedback("r1", "impression", 1)
    h.fb(impression)
    h.fb(impression)
    click = feedback("r1", "click", 2)
    assert len(h.fb(click)) == 1
    assert h.fb(click) == []
    assert h.counts["duplicate_feedback"] == 2


def test_feedback_redelivered_with_its_event_id_in_another_uuid_form_counts_once() -> None:
    """A producer writing Kafka directly (the collector writes the canonical form) may
    retry with the id in another form ``uuid.UUID`` reads. Noted as written, the upper-case
    copy of a value was summed a second time: the label was 25.0 for one value of 12.5."""
    h = Harness()
    h.pred(prediction("r1", model_name="conversion_value", score=4.0))
    h.fb(feedback("r1", "impression", 1))
    event_id = str(uuid.uuid4())
    h.fb(feedback("r1", "value", 100, value=12.5, event_id=event_id))
    h.fb(feedback("r1", "value", 101, value=12.5, event_id=event_id.upper()))
    h.fb(feedback("r1", "value", 102, value=12.5, event_id=f"urn:uuid:{event_id}"))
    (example,) = h.advance(3660)
    assert example["label"] == 12.5
    assert h.counts["duplicate_feedback"] == 2


def test_feedback_after_the_horizon_is_late() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    assert h.fb(feedback("r1", "click", 1800.5)) == []  # received after served + horizon
    [example] = h.advance(1900)
    assert example["label"] == 0.0
    assert h.fb(feedback("r1", "click", 1901)) == []
    assert h.counts["late_feedback"] == 2


def test_feedback_from_a_host_whose_clock_runs_ahead_is_placed_at_the_brokers_time() -> None:
    """A TelemetryClient host whose clock ran a day ahead stamped its feedback's
    received_ts a day late. Taken as the partition's time, it closed every open horizon at
    once (the impressions became negatives) and the clicks read after it were late. Kafka
    appended it at 3 s (LogAppendTime): that is when it was received."""
    h = Harness()
    h.pred(prediction("r1"))
    h.pred(prediction("r2", served_s=1))
    h.fb(feedback("r1", "impression", 1), appended_s=1)
    assert h.fb(feedback("r2", "impression", 86400 + 2), appended_s=2) == []
    [positive] = h.fb(feedback("r1", "click", 3), appended_s=3)
    assert positive["request_id"] == "r1"
    assert positive["label"] == 1.0
    [other] = h.fb(feedback("r2", "click", 4), appended_s=4)
    assert other["label"] == 1.0
    assert h.counts["clock_ahead_feedback"] == 1
    # Within a second of the broker's time, received_ts stands (hosts' clocks differ a
    # little); without a broker time (-1 or none) there is nothing to compare with.
    h.pred(prediction("r3", served_s=5))
    h.fb(feedback("r3", "impression", 5.9), appended_s=5)
    h.fb(feedback("r3", "click", 4000), appended_ms=-1)
    assert h.counts["clock_ahead_feedback"] == 1
    assert h.counts["late_feedback"] == 1  # the click of 4000 s: after r3's horizon


def test_a_prediction_from_a_worker_whose_clock_runs_ahead_is_placed_at_the_brokers_time() -> None:
    """One prediction stamped two hours ahead (a worker's fast clock) moved its partition's
    predictions time on by two hours: every feedback waiting for its prediction was
    orphaned, and the predictions read after it were late (0 examples for a new user)."""
    h = Harness()
    h.fb(feedback("r1", "impression", 1), appended_s=1)  # waits for its prediction
    h.fb(feedback("r2", "impression", 2), appended_s=2)
    h.fb(feedback("r2", "click", 3), appended_s=3)
    assert h.pred(prediction("fast", served_s=7200), appended_s=4) == []
    assert h.counts["clock_ahead_predictions"] == 1
    assert "orphaned_feedback" not in h.counts
    [positive] = h.pred(prediction("r2", served_s=1), appended_s=5)
    assert (positive["request_id"], positive["label"]) == ("r2", 1.0)
    h.pred(prediction("r1", served_s=0.5), appended_s=5)
    assert "late_predictions" not in h.counts
    # Within a second of the broker's time, served_ts stands.
    h.pred(prediction("r3", served_s=5.9), appended_s=5)
    assert h.counts["clock_ahead_predictions"] == 1


def test_feedback_after_a_positive_changes_nothing() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    h.fb(feedback("r1", "click", 2))
    assert h.fb(feedback("r1", "click", 3)) == []
    assert h.counts["after_label"] == 1


def test_regression_labels_sum_values_within_the_horizon() -> None:
    h = Harness()
    h.pred(prediction("r1", model_name="conversion_value", score=4.0))
    h.pred(prediction("r2", model_name="conversion_value", score=1.0))
    h.fb(feedback("r1", "impression", 1))
    h.fb(feedback("r1", "conversion", 100, value=30.0))
    h.fb(feedback("r1", "value", 200, value=12.5))
    h.fb(feedback("r1", "conversion", 300))  # a conversion without a value adds nothing
    h.fb(feedback("r1", "value", 3601, value=1000.0))  # after the 1 h horizon
    h.fb(feedback("r2", "impression", 1))
    assert h.advance(3600) == []
    first, second = sorted(h.advance(3660), key=lambda e: e["request_id"])
    assert (first["label"], first["label_definition"]) == (42.5, "value_within_1h")
    assert first["outcome_ts"] == _ms(_at(100) - timedelta(milliseconds=400))
    assert (second["label"], second["outcome_ts"]) == (0.0, None)
    assert h.counts["values"] == 2
    assert h.counts["late_feedback"] == 1


def test_unknown_models_are_counted() -> None:
    h = Harness()
    h.pred(prediction("r1", model_name="not-a-model"))
    assert h.state == {}
    assert h.counts == {"predictions": 1, "unknown_model": 1}
    # A model dropped from the configuration while its requests were in flight.
    h.pred(prediction("r2"))
    h.pred(prediction("r3"))
    narrower = LabelJoiner.for_specs({"ctr_tree": SPECS["ctr_tree"]}, h.state)
    assert narrower.on_feedback(feedback("r2", "impression", 1)) == []
    assert narrower.advance(_ms(_at(10_000))) == []
    assert h.state == {}
    assert narrower.counters.unknown_model == 2


def test_a_replay_emits_nothing_twice() -> None:
    h = Harness()
    records = [
        ("pred", prediction("r1")),
        ("fb", feedback("r1", "impression", 1)),
        ("fb", feedback("r1", "click", 2)),
        ("pred", prediction("r2", 3)),
        ("fb", feedback("r2", "impression", 4)),
        ("pred", prediction("r3", 5)),
    ]
    for kind, record in records:
        getattr(h, kind)(record)
    h.advance(1900)
    assert sorted((e["request_id"], e["label"]) for e in h.examples) == [
        ("r1", 1.0),
        ("r2", 0.0),
    ]
    # At-least-once: everything is delivered again, before and after the horizon closed.
    for kind, record in records:
        getattr(h, kind)(record)
    h.advance(1950)
    assert len(h.examples) == 2
    assert h.counts["duplicate_predictions"] == 3
    assert h.counts["duplicate_feedback"] == 3


def test_a_replay_after_retention_is_late_not_emitted_again() -> None:
    h = Harness(retention_s=600)
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    h.advance(1860)
    assert len(h.examples) == 1
    h.advance(1860 + 600)
    assert h.state == {}  # the marker is gone...
    assert h.pred(prediction("r1")) == []  # ...but the watermark says it is stale
    # Its feedback may still belong to a prediction yet to come (for the longest
    # horizon): held, then dropped unclaimed.
    assert h.fb(feedback("r1", "impression", 1)) == []
    h.advance(10_000)
    assert h.fb(feedback("r1", "impression", 1)) == []  # now too old even for that
    assert len(h.examples) == 1
    assert h.state == {}
    assert h.counts["late_predictions"] == 1
    assert (h.counts["held_feedback"], h.counts["orphaned_feedback"]) == (1, 1)
    assert h.counts["late_feedback"] == 1


def test_state_is_json_and_a_new_joiner_continues_from_it() -> None:
    h = Harness()
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    h.pred(prediction("r2"))
    h.fb(feedback("r2", "impression", 1))
    h.fb(feedback("r2", "click", 2))
    h.fb(feedback("r3", "click", 2))  # held
    # What a Faust table would store and restore after a restart.
    restored: dict[str, dict[str, Any]] = json.loads(json.dumps(h.state))
    again = LabelJoiner.for_specs(SPECS, restored)
    again.advance(_ms(_at(2)))
    assert again.on_feedback(feedback("r2", "click", 3)) == []  # after its positive
    [negative] = again.advance(_ms(_at(1900)))
    assert (negative["request_id"], negative["label"]) == ("r1", 0.0)
    assert again.counters.after_label == 1


def test_reindex_picks_up_entries_added_behind_the_joiners_back() -> None:
    h = Harness()
    h.advance(0)  # index built
    other = Harness()
    other.pred(prediction("r9"))
    other.fb(feedback("r9", "impression", 1))
    h.state.update(other.state)  # e.g. a table partition recovered after a rebalance
    assert h.advance(1900) == []
    h.joiner.reindex()
    [example] = h.advance(1901)
    assert example["request_id"] == "r9"


def test_the_synthetic_world_joins_to_its_ground_truth() -> None:
    predictions, feedback_records, requests = ClickWorld(seed=3).telemetry(2000, T0, every_ms=500)
    h = Harness()
    # Interleave both topics by time, as two partitions read together would be.
    stream = [(p["served_ts"], "pred", p) for p in predictions]
    stream += [(f["received_ts"], "fb", f) for f in feedback_records]
    for _, kind, record in sorted(stream, key=lambda item: (item[0], item[1])):
        getattr(h, kind)(record)
    h.advance(7000)  # past every horizon, lateness and retention
    seen = {f["request_id"] for f in feedback_records if f["kind"] == "impression"}
    clicked = {p["request_id"] for p, r in zip(predictions, requests, strict=True) if r.clicked}
    labels = {e["request_id"]: e["label"] for e in h.examples}
    assert set(labels) == seen
    assert {rid for rid, label in labels.items() if label == 1.0} == seen & clicked
    assert h.counts["unseen"] == len(predictions) - len(seen)
    assert h.state == {}


def test_residuals_per_model_version_and_arm() -> None:
    h = Harness()
    aggregator = ResidualAggregator(started=T0)
    for i, (served_s, version, clicked) in enumerate([(0, 4, True), (1, 4, False), (2, 5, True)]):
        rid = f"r{i}"
        h.pred(prediction(rid, served_s, model_version=version, score=0.25))
        h.fb(feedback(rid, "impression", served_s + 1))
        if clicked:
            h.fb(feedback(rid, "click", served_s + 2))
    h.advance(1900)
    for example in h.examples:
        aggregator.add(example)
    records = aggregator.flush(_at(1900))
    assert [(r["model_version"], r["example_count"]) for r in records] == [(4, 2), (5, 1)]
    v4 = records[0]
    assert v4["metrics"]["mean_residual"] == pytest.approx(((1 - 0.25) + (0 - 0.25)) / 2)
    assert v4["metrics"]["mean_abs_residual"] == pytest.approx(0.5)
    assert v4["metrics"]["mean_label"] == pytest.approx(0.5)
    assert (v4["source"], v4["arm"], v4["window_start_ts"]) == ("label-join", "b", T0)
    serde = h.serdes["ModelMetrics"]
    for record in records:
        assert serde.decode(serde.encode(record)) == record
    assert aggregator.flush(_at(2000)) == []
    assert aggregator.window_start == _at(2000)


def test_in_order_holds_positives_until_their_horizon_closes_in_serving_order() -> None:
    h = Harness(with_strategy("in_order"))
    h.pred(prediction("seen", 0))
    h.pred(prediction("clicked", 10))
    h.fb(feedback("seen", "impression", 1))
    h.fb(feedback("clicked", "impression", 11))
    assert h.fb(feedback("clicked", "click", 14)) == []  # known, held
    assert [e["request_id"] for e in h.advance(1800 + 60)] == ["seen"]
    [positive] = h.advance(1810 + 60)
    assert positive["label"] == 1.0
    assert positive["outcome_ts"] == _ms(_at(14) - timedelta(milliseconds=400))
    assert positive["labelled_ts"] == _ms(_at(1810))
    assert h.counts["positives"] == h.counts["negatives"] == 1
    assert h.advance(100_000) == []


def test_fake_negative_sends_a_negative_at_impression_and_the_positive_again() -> None:
    h = Harness(with_strategy("fake_negative"))
    h.pred(prediction("clicked", 0))
    h.pred(prediction("not", 0))
    [fake] = h.fb(feedback("clicked", "impression", 1))
    assert (fake["label"], fake["outcome_ts"], fake["labelled_ts"]) == (0.0, None, _ms(_at(1)))
    assert [e["label"] for e in h.fb(feedback("not", "impression", 2))] == [0.0]
    [positive] = h.fb(feedback("clicked", "click", 5))
    assert (positive["request_id"], positive["label"]) == ("clicked", 1.0)
    assert h.advance(100_000) == []  # the horizon closes without a second negative
    assert h.counts["fake_negatives"] == 2
    assert (h.counts["positives"], h.counts["negatives"]) == (1, 1)


def test_fake_negative_click_before_impression_is_only_a_positive() -> None:
    h = Harness(with_strategy("fake_negative"))
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "click", 1))
    assert [e["label"] for e in h.fb(feedback("r1", "impression", 2))] == [1.0]
    assert "fake_negatives" not in h.counts


def test_a_fake_negative_is_remembered_in_the_state() -> None:
    specs = with_strategy("fake_negative")
    h = Harness(specs)
    h.pred(prediction("r1"))
    h.fb(feedback("r1", "impression", 1))
    state = json.loads(json.dumps(h.state))
    resumed = LabelJoiner.for_specs(specs, state, clock=dict(h.joiner.clock_state))
    assert resumed.advance(_ms(_at(100_000))) == []
    assert resumed.counters.negatives == 1


GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def test_a_crawlers_impressions_and_clicks_are_not_learned_from() -> None:
    """Bots were filtered from events only: a crawler that renders pages (the tag's
    impressions) was learned from like a person. Impressions and clicks a declared
    crawler's user agent sent are counted and left out: its prediction stays unseen.
    Other kinds, feedback without a user agent, and HTTP libraries' (servers forward
    feedback with them) count."""
    h = Harness()
    h.pred(prediction("r1"))
    assert h.fb(feedback("r1", "impression", 1, user_agent=GOOGLEBOT)) == []
    assert h.fb(feedback("r1", "click", 2, user_agent=GOOGLEBOT)) == []
    h.pred(prediction("r2"))
    h.fb(feedback("r2", "impression", 1, user_agent=BROWSER))
    [positive] = h.fb(feedback("r2", "click", 2))
    assert (positive["request_id"], positive["label"]) == ("r2", 1.0)
    # Servers forwarding a person's impression with their own user agents (the simulator
    # does, with aiohttp's): not crawlers here, though preprocess takes them for some.
    for n, server in enumerate(("Python/3.11 aiohttp/3.11.7", "feedback-relay/1.0",
                                "shop-backend/2.3 (+https://shop.example)")):  # fmt: skip
        h.pred(prediction(f"s{n}"))
        h.fb(feedback(f"s{n}", "impression", 1, user_agent=server))
    assert h.counts["crawler_feedback"] == 2
    h.advance(2000)
    assert sorted(e["request_id"] for e in h.examples) == ["r2", "s0", "s1", "s2"]
    assert h.counts["unseen"] >= 1


def test_a_crawler_s_feedback_delivered_twice_counts_once() -> None:
    """Kafka delivers at least once: a crawler's impression read twice (a redelivery after
    a restart) was counted twice as crawler_feedback, whether its prediction came first
    or not. Its event id is remembered as any feedback's is."""
    h = Harness()
    h.pred(prediction("r1"))
    seen = feedback("r1", "impression", 1, user_agent=GOOGLEBOT)
    assert h.fb(seen) == []
    assert h.fb(seen) == []
    early = feedback("r2", "impression", 2, user_agent=GOOGLEBOT)
    assert h.fb(early) == []
    assert h.fb(early) == []
    h.pred(prediction("r2", 1))
    assert h.counts["crawler_feedback"] == 2
    assert h.counts["duplicate_feedback"] == 2
    h.advance(5000)
    assert h.examples == []  # both predictions stay unseen
    assert h.counts["unseen"] == 2
