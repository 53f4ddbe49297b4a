"""The dashboard's aggregation of decoded records: bounded series, rates from cumulative
counts, models and arms, drift reports, alerts, and the state/delta protocol."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamlearn.dashboard.alerts import AlertLog
from streamlearn.dashboard.decoding import Decoders, snapshot_metadata_schema
from streamlearn.dashboard.drift import DriftBoard, crossed
from streamlearn.dashboard.history import Recent, Table
from streamlearn.dashboard.models import ModelBoard
from streamlearn.dashboard.rates import RateTable
from streamlearn.dashboard.sse import encode_json
from streamlearn.dashboard.state import Cursor, DashboardState, Decoded
from streamlearn.serde import AvroSerde, InMemoryRegistry, value_subject
from streamlearn.settings import Settings

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def snapshot(version: int, seconds: float, **metrics: float) -> dict[str, Any]:
    return {
        "model_name": "ctr",
        "version": version,
        "parent_version": version - 1 or None,
        "created_ts": at(seconds),
        "trained_examples": 100 * version,
        "metrics": metrics,
    }


def model_metrics(
    source: str, seconds: float, arm: str | None = None, count: int = 10, **metrics: float
) -> dict[str, Any]:
    return {
        "model_name": "ctr",
        "model_version": 3,
        "arm": arm,
        "source": source,
        "window_start_ts": at(seconds - 10),
        "window_end_ts": at(seconds),
        "example_count": count,
        "metrics": metrics,
        "emitted_ts": at(seconds),
    }


def drift_report(
    key: str, seconds: float, drifted: bool, partition: int = 0, **extra: Any
) -> dict[str, Any]:
    return {
        "report_key": key,
        "scope": "feature",
        "model_name": "ctr",
        "model_version": 3,
        "arm": None,
        "producer": None,
        "feature": key.rsplit("/", 1)[-1],
        "kind": "numeric",
        "bins": ["0", "1", "2"],
        "reference_counts": [10.0, 20.0, 10.0],
        "current_counts": [30.0, 5.0, 5.0],
        "statistics": {"psi": 0.9 if drifted else 0.01},
        "thresholds": {"psi": 0.2},
        "drifted": drifted,
        "topic": "telemetry.predictions",
        "partition": partition,
        "first_offset": int(seconds) * 10,
        "last_offset": int(seconds) * 10 + 9,
        "record_count": 40,
        "window_start_ts": at(seconds - 10),
        "window_end_ts": at(seconds),
        **extra,
    }


def alert(key: str, seconds: float, severity: str = "warning") -> dict[str, Any]:
    return {
        "alert_key": key,
        "kind": "drift",
        "severity": severity,
        "message": f"{key} drifted",
        "model_name": "ctr",
        "model_version": 3,
        "value": 0.9,
        "threshold": 0.2,
        "labels": {"feature": "price"},
        "source": "monitor",
        "raised_ts": at(seconds),
    }


# --- bounded series ------------------------------------------------------------------


def test_a_table_keeps_rows_sorted_and_cuts_by_age_from_its_newest_row() -> None:
    table = Table(("a",), window_s=60)
    for t in (10.0, 30.0, 20.0, 50.0):
        table.add(t, {"a": t})
    assert table.times == [10.0, 20.0, 30.0, 50.0]
    assert table.values["a"] == [10.0, 20.0, 30.0, 50.0]
    table.add(85.0, {"a": 85.0})
    assert table.times == [30.0, 50.0, 85.0]  # older than 85 - 60 are gone
    assert table.since(50.0) == {"t": [85.0], "a": [85.0]}


def test_a_table_is_bounded_by_count_and_merges_rows_of_one_moment() -> None:
    table = Table(("a", "b"), window_s=1e9, max_points=3)
    for t in range(10):
        table.add(float(t), {"a": float(t)})
    assert table.times == [7.0, 8.0, 9.0]
    table.add(9.0, {"b": 1.5}, merge=True)
    assert len(table) == 3
    assert table.values["b"] == [None, None, 1.5]
    assert table.last("a") == 9.0
    table.add_column("c")
    assert table.values["c"] == [None, None, None]


def test_recent_keeps_the_most_recently_touched_keys() -> None:
    recent: Recent[str, list[int]] = Recent(2)
    recent.get_or_create("a", list)
    recent.get_or_create("b", list)
    recent.get_or_create("a", list)
    recent.get_or_create("c", list)
    assert [k for k, _ in recent.items()] == ["a", "c"]


# --- rates ---------------------------------------------------------------------------


def test_rates_are_increases_per_second_over_the_sources_seen_twice() -> None:
    rates = RateTable(["in", "clean"])
    assert rates.sample(100.0, {("in", "0"): 10, ("in", "1"): 5, ("clean", "0"): 0}) == {}
    assert rates.sample(102.0, {("in", "0"): 30, ("in", "1"): 25, ("clean", "0"): 4}) == {
        "in": 20.0,
        "clean": 2.0,
    }
    # A partition missing from a sample is left out of that rate; a new one counts from
    # its second sample.
    assert rates.sample(103.0, {("in", "0"): 40, ("clean", "0"): 4, ("clean", "1"): 9}) == {
        "in": 10.0,
        "clean": 0.0,
    }
    assert rates.totals == {"in": 40.0, "clean": 13.0}
    assert rates.table.times == [102.0, 103.0]


def test_a_count_that_went_down_started_again_from_zero() -> None:
    rates = RateTable(["bots"])
    rates.sample(0.0, {("bots", "preprocess"): 500})
    assert rates.sample(1.0, {("bots", "preprocess"): 7}) == {"bots": 7.0}


def test_a_series_without_any_source_is_a_gap_not_zero() -> None:
    rates = RateTable(["in", "feedback"])
    rates.sample(0.0, {("in", "0"): 1})
    assert rates.sample(1.0, {("in", "0"): 2}) == {"in": 1.0, "feedback": None}
    assert rates.sample(1.0, {("in", "0"): 3}) == {}  # not after the previous sample


# --- models and arms -----------------------------------------------------------------


def test_models_keep_versions_prequential_and_served_metrics_over_time() -> None:
    board = ModelBoard()
    board.add_snapshot(snapshot(1, 0, auc=0.6, log_loss=0.7, evaluated_examples=100.0))
    board.add_metrics(model_metrics("learner", 0, auc=0.6, served_auc=0.55))
    board.add_snapshot(snapshot(2, 10, auc=0.7, log_loss=0.6))
    board.add_metrics(
        model_metrics("label-join", 15, mean_residual=0.1, mean_score=0.3, mean_label=0.4)
    )
    [model] = board.models_state()
    assert model["name"] == "ctr"
    assert model["version"] == 2
    assert model["versions_seen"] == 2
    assert model["trained_examples"] == 200
    assert model["created_ts"] == at(10).timestamp()
    columns = model["columns"]
    t0 = T0.timestamp()
    # The snapshot and the learner's metrics of one moment are one row.
    assert columns["t"] == [t0, t0 + 10, t0 + 15]
    assert columns["version"] == [1.0, 2.0, None]
    assert columns["auc"] == [0.6, 0.7, None]
    assert columns["served_auc"] == [0.55, None, None]
    assert columns["mean_residual"] == [None, None, 0.1]
    assert "evaluated_examples" not in columns  # a count: shown, not charted
    assert model["latest"]["evaluated_examples"] == 100.0
    assert model["sources"]["served_auc"] == "learner"
    assert model["reliability"]["windows"] == {
        "score": [0.3],
        "label": [0.4],
        "examples": [10],
    }


def test_an_older_snapshot_read_later_does_not_replace_the_newest() -> None:
    board = ModelBoard()
    board.add_snapshot(snapshot(5, 50))
    board.add_snapshot(snapshot(4, 40))
    [model] = board.models_state()
    assert model["version"] == 5
    assert model["columns"]["version"] == [4.0, 5.0]


def test_a_model_says_which_version_its_promotion_gate_lets_serve() -> None:
    """Found by a new user: with STREAMLEARN_MODEL_PROMOTION set, the models table showed
    `ctr` v5 just published, a version the gate held back (workers served v4), and nothing
    on the page said which version users got."""
    board = ModelBoard()
    board.add_snapshot(snapshot(3, 30))  # no gate: no `promoted` figure, promoted
    [model] = board.models_state()
    assert (model["version"], model["promoted_version"]) == (3, 3)
    board.add_snapshot(snapshot(4, 40, promoted=1.0, gate_log_loss=0.50))
    board.add_snapshot(snapshot(5, 50, promoted=0.0, gate_log_loss=0.58))
    [model] = board.models_state()
    assert (model["version"], model["promoted_version"]) == (5, 4)
    # Read out of order (several partitions' records interleave): the newest promoted.
    board.add_snapshot(snapshot(2, 20, promoted=1.0))
    assert board.models_state()[0]["promoted_version"] == 4


def test_non_finite_metrics_become_gaps_so_the_state_is_valid_json() -> None:
    board = ModelBoard()
    board.add_metrics(model_metrics("learner", 0, auc=float("nan"), log_loss=float("inf")))
    [model] = board.models_state()
    assert model["latest"] == {}
    json.loads(encode_json(model))


def test_arms_weigh_label_join_windows_by_their_examples() -> None:
    board = ModelBoard()
    board.add_metrics(
        model_metrics("label-join", 10, "a", count=100, mean_label=0.1, mean_score=0.2)
    )
    board.add_metrics(
        model_metrics("label-join", 20, "a", count=300, mean_label=0.3, mean_score=0.2)
    )
    board.add_metrics(model_metrics("learner", 20, "a", auc=0.7, served_auc=0.65))
    board.add_metrics(
        model_metrics("label-join", 20, "b", count=50, mean_label=0.5, mean_score=0.4)
    )
    board.add_metrics(
        model_metrics("label-join", 20, None, count=50, mean_label=0.5, mean_score=0.4)
    )
    arms = board.arms_state()
    assert [(a["model"], a["arm"]) for a in arms] == [("ctr", "a"), ("ctr", "b")]
    assert arms[0]["examples"] == 400
    assert arms[0]["label_rate"] == pytest.approx(0.25)
    assert arms[0]["mean_score"] == pytest.approx(0.2)
    assert arms[0]["metrics"] == {"auc": 0.7, "served_auc": 0.65}
    assert arms[0]["version"] == 3


def test_calibration_reports_give_each_arm_a_reliability_curve() -> None:
    state = DashboardState()
    report = drift_report(
        "calibration/ctr/a//score",
        10,
        False,
        scope="calibration",
        kind="calibration",
        arm="a",
        bins=["0.50", "0.10"],
        reference_counts=[0.5, 0.1],
        current_counts=[0.55, 0.08],
        statistics={"ece": 0.03},
    )
    state.apply([Decoded("monitoring.drift", report)])
    [model] = state.section("models")
    assert model["reliability"]["curves"] == [
        {
            "arm": "a",
            "score": [0.1, 0.5],
            "label": [0.08, 0.55],
            "ece": 0.03,
            "window_end_ts": at(10).timestamp(),
        }
    ]


# --- drift -----------------------------------------------------------------------------


def test_crossed_statistics_are_those_strictly_over_their_threshold() -> None:
    assert crossed({"psi": 0.3, "js": 0.1, "w": None}, {"psi": 0.2, "js": 0.1, "w": 0.1}) == ["psi"]


def test_drift_shows_the_newest_window_per_key_drifted_first() -> None:
    board = DriftBoard()
    board.add(drift_report("feature/ctr///price", 20, drifted=False))
    board.add(drift_report("feature/ctr///price", 10, drifted=True))  # older, read later
    board.add(drift_report("feature/ctr///age", 5, drifted=True))
    state = board.state()
    assert [r["key"] for r in state["reports"]] == ["feature/ctr///age", "feature/ctr///price"]
    age, price = state["reports"]
    assert age["drifted"]
    assert age["crossed"] == ["psi"]
    assert not price["drifted"]
    assert price["window_end_ts"] == at(20).timestamp()
    assert (price["windows"], price["drifted_windows"]) == (2, 1)
    assert price["reference"] == [10.0, 20.0, 10.0]
    assert state["drifted"] == 1
    assert state["total"] == 2


def test_a_drifted_partition_is_shown_even_when_another_has_a_newer_window() -> None:
    board = DriftBoard()
    board.add(drift_report("feature/ctr///price", 10, drifted=True, partition=1))
    board.add(drift_report("feature/ctr///price", 20, drifted=False, partition=0))
    [report] = board.state()["reports"]
    assert report["drifted"]
    assert report["partition"] == 1
    assert (report["partitions"], report["drifted_partitions"]) == (2, 1)
    board.add(drift_report("feature/ctr///price", 30, drifted=False, partition=1))
    [report] = board.state()["reports"]
    assert not report["drifted"]
    assert report["partition"] == 1


# --- alerts ----------------------------------------------------------------------------


def test_alerts_are_listed_newest_first_and_bounded() -> None:
    log = AlertLog(keep=3)
    for n, seconds in enumerate((30, 10, 50, 20, 40)):
        log.add(alert(f"k{n}", seconds), offset=n)
    assert [a["key"] for a in log.state()["items"]] == ["k2", "k4", "k0"]
    assert log.total == 5
    assert log.state()["items"][0]["offset"] == 2


def test_one_condition_alerted_by_each_partition_is_one_entry_that_counts_them() -> None:
    """The monitor judges each partition on its own, so one drift gives one alert per
    partition under one key: a price change listed 12 entries (6 partitions, 2 arms)."""
    log = AlertLog()
    for partition, seconds in enumerate((10, 25, 12, 40, 31, 18)):
        record = alert("drift/feature/ctr/a//price", seconds)
        record["labels"] = {"feature": "price", "partition": str(partition)}
        record["message"] = f"price: psi over its threshold (partition {partition})"
        log.add(record, offset=partition)
    log.add(alert("drift/feature/ctr/b//price", 20))
    later = alert("drift/feature/ctr/a//price", 10 + 600)  # after a cooldown: news again
    later["labels"] = {"feature": "price", "partition": "0"}
    log.add(later, offset=9)
    items = log.state()["items"]
    assert [(a["key"], a["count"]) for a in items] == [
        ("drift/feature/ctr/a//price", 1),
        ("drift/feature/ctr/a//price", 6),
        ("drift/feature/ctr/b//price", 1),
    ]
    grouped = items[1]
    assert grouped["partitions"] == ["0", "1", "2", "3", "4", "5"]
    assert grouped["raised_ts"] == at(40).timestamp()  # the newest of them
    assert grouped["first_raised_ts"] == at(10).timestamp()
    assert grouped["message"] == "price: psi over its threshold (partition 3)"
    assert log.total == 8  # every alert read is still counted
    assert log.by_severity["warning"] == 8


def test_the_alert_timeline_counts_per_minute_and_severity_with_empty_minutes() -> None:
    log = AlertLog()
    log.add(alert("a", 1, "critical"))
    log.add(alert("b", 2, "critical"))
    log.add(alert("c", 130, "info"))
    log.add(alert("d", 3, "no-such-severity"))
    timeline = log.state()["timeline"]
    minute = T0.timestamp() - T0.timestamp() % 60
    assert timeline["t"] == [minute, minute + 60, minute + 120]
    assert timeline["critical"] == [2.0, 0.0, 0.0]
    assert timeline["info"] == [0.0, 0.0, 1.0]
    assert timeline["warning"] == [1.0, 0.0, 0.0]
    assert log.by_severity == {"info": 1, "warning": 1, "critical": 2}


# --- state and deltas --------------------------------------------------------------------


def test_a_delta_carries_only_what_changed_since_the_cursor() -> None:
    state = DashboardState(clock=lambda: 1000.0)
    full, cursor = state.full()
    assert set(full) >= {"config", "rates", "counters", "models", "drift", "alerts", "status"}
    assert [p["name"] for p in full["config"]["pipeline"]][:2] == ["in", "clean"]
    assert state.delta(cursor) == (None, cursor)

    state.apply([Decoded("monitoring.alerts", alert("a", 1))])
    delta, cursor = state.delta(cursor)
    assert delta is not None
    assert set(delta) == {"alerts", "status", "server_time"}
    assert delta["status"]["records"]["monitoring.alerts"] == 1

    state.sample_offsets(10.0, {("in", "0"): 0})
    state.sample_offsets(11.0, {("in", "0"): 5})
    state.sample_offsets(12.0, {("in", "0"): 15})
    delta, cursor = state.delta(cursor)
    assert delta is not None
    assert set(delta) == {"rates", "server_time"}
    assert delta["rates"]["columns"]["t"] == [11.0, 12.0]
    assert delta["rates"]["columns"]["in"] == [5.0, 10.0]
    state.sample_offsets(13.0, {("in", "0"): 16})
    delta, cursor = state.delta(cursor)
    assert delta is not None
    assert delta["rates"]["columns"]["t"] == [13.0]
    assert delta["rates"]["totals"]["in"] == 16.0
    json.loads(encode_json(state.full()[0]))


def test_metrics_of_an_arm_change_the_arms_section_too() -> None:
    state = DashboardState()
    _, cursor = state.full()
    state.apply([Decoded("model.metrics", model_metrics("learner", 0, auc=0.7))])
    delta, cursor = state.delta(cursor)
    assert delta is not None
    assert "arms" not in delta
    assert "models" in delta
    state.apply([Decoded("model.metrics", model_metrics("learner", 0, "b", auc=0.7))])
    delta, _ = state.delta(cursor)
    assert delta is not None
    assert "arms" in delta


def test_a_fresh_cursor_gets_everything_again() -> None:
    state = DashboardState()
    state.apply([Decoded("monitoring.drift", drift_report("feature/ctr///x", 1, True))])
    delta, _ = state.delta(Cursor())
    assert delta is not None
    assert delta["drift"]["drifted"] == 1


# --- decoding ----------------------------------------------------------------------------


def full_snapshot() -> dict[str, Any]:
    return {
        **snapshot(7, 0, auc=0.8),
        "offsets": [{"topic": "training.examples", "partition": 0, "offset": 700}],
        "libraries": {"river": "0.23"},
        "spec": "logistic",
        "content_type": "application/x-river-pickle; protocol=5",
        "payload": b"\x80\x05not a model at all",
        "payload_sha256": "0" * 64,
        "signing_key_id": None,
        "signature": "0" * 64,
        "manifest": None,
    }


def test_snapshots_are_decoded_without_their_payload() -> None:
    settings = Settings(topic_prefix="t.")
    registry = InMemoryRegistry()
    topic = "t.model.state"
    written = AvroSerde(registry, "ModelSnapshot", value_subject(topic)).encode(full_snapshot())
    decoded = Decoders(settings, registry).decode(topic, written, 0, 41)
    assert decoded.topic == "model.state"
    assert decoded.offset == 41
    assert set(decoded.value) == {
        "model_name",
        "version",
        "parent_version",
        "created_ts",
        "trained_examples",
        "metrics",
    }
    assert decoded.value["version"] == 7


def test_the_metadata_schema_is_a_subset_of_the_snapshot_schema() -> None:
    schema = snapshot_metadata_schema()
    assert schema["name"] == "ModelSnapshot"
    assert "payload" not in {f["name"] for f in schema["fields"]}


def test_other_topics_decode_with_their_own_schema() -> None:
    settings = Settings(topic_prefix="t.")
    registry = InMemoryRegistry()
    decoders = Decoders(settings, registry)
    assert sorted(decoders.logical.values()) == [
        "model.metrics",
        "model.state",
        "monitoring.alerts",
        "monitoring.drift",
    ]
    value = AvroSerde(registry, "Alert", value_subject("t.monitoring.alerts")).encode(alert("a", 1))
    decoded = decoders.decode("t.monitoring.alerts", value, 0, 0)
    assert decoded.value["alert_key"] == "a"
    assert decoded.value["severity"] == "warning"


def test_a_label_join_window_is_one_figure_over_every_version_it_labelled() -> None:
    """Found by a new user: label-join writes one record per version each window; positives
    reach the newest versions at once and negatives the older ones a horizon later, and
    the row of a window kept the last record's (the newest version's: mostly positives).
    `ctr`'s mean residual read 0.446 where its examples' was -0.06, and the reliability
    points sat at labels 0 and 1."""
    board = ModelBoard()
    newest = model_metrics("label-join", 10, count=10, mean_residual=0.7, mean_abs_residual=0.7,
                           rmse_residual=0.7, mean_score=0.3, mean_label=1.0)  # fmt: skip
    older = model_metrics("label-join", 10, count=30, mean_residual=-0.3, mean_abs_residual=0.3,
                          rmse_residual=0.3, mean_score=0.3, mean_label=0.0)  # fmt: skip
    board.add_metrics({**older, "model_version": 4})
    board.add_metrics({**newest, "model_version": 5})
    [model] = board.models_state()
    assert model["latest"]["mean_residual"] == pytest.approx(-0.05)
    assert model["latest"]["mean_abs_residual"] == pytest.approx(0.4)
    assert model["latest"]["rmse_residual"] == pytest.approx(((0.49 * 10 + 0.09 * 30) / 40) ** 0.5)
    assert model["columns"]["mean_residual"] == [pytest.approx(-0.05)]
    windows = model["reliability"]["windows"]
    assert windows["score"] == [pytest.approx(0.3)]
    assert windows["label"] == [pytest.approx(0.25)]
    assert windows["examples"] == [40]
    board.add_metrics(model_metrics("label-join", 20, count=5, mean_residual=0.1,
                                    mean_score=0.4, mean_label=0.5))  # fmt: skip
    [model] = board.models_state()
    assert model["columns"]["mean_residual"] == [pytest.approx(-0.05), pytest.approx(0.1)]


def test_an_arm_shows_the_learner_figures_of_its_model() -> None:
    """Found by a new user: the arms table's AUC columns were always "-": the learner's
    records carry no arm (one learner per model), so none was ever an arm's."""
    board = ModelBoard()
    board.add_metrics(model_metrics("label-join", 10, "ctr", count=10, mean_label=0.2,
                                    mean_score=0.2))  # fmt: skip
    board.add_metrics(model_metrics("learner", 10, None, auc=0.81, served_auc=0.79))
    [arm] = board.arms_state()
    assert arm["metrics"] == {"auc": 0.81, "served_auc": 0.79}


def test_no_rate_is_taken_over_a_fraction_of_a_second() -> None:
    """Found by a new user: the first two samples of the parts' counters were 0.1 s apart,
    and "predictions served" read 928/s (about 100/s in fact), scaling the chart so that
    every later point lay flat at its bottom."""
    rates = RateTable(["served"])
    rates.sample(36.2, {("served", "serve"): 3600})
    assert rates.sample(36.3, {("served", "serve"): 3693}) == {}
    assert rates.totals == {"served": 3693.0}
    assert rates.sample(37.2, {("served", "serve"): 3700}) == {"served": pytest.approx(100.0)}
