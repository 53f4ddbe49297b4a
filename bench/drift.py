#!/usr/bin/env python3
"""The monitor against injected changes: detection delay and false alarms, beside River's
ADWIN and PageHinkley on the same streams.

Each scenario runs the simulator's world in the lab (:mod:`streamlearn.simulate.lab`:
the real preprocess, label-join and monitor steps over the records the live system would
carry, in virtual time) with one change injected at ``--change-at`` seconds, and a
drift-free run of ``--quiet-s`` seconds (default 30 minutes). The settings are those of
``streamlearn up --simulate`` (label horizon 20 s, monitor references of 300 records and
windows of 100), at its default rate (100 page views a second, 5000 people, two
experiment arms).

- monitor: the first alert of the matching kind (and feature) at or after the change,
  by its ``raised_ts`` (event time of the window that raised it); false alarms are the
  alerts raised before the change, and every alert of the drift-free run.
- River's ADWIN and PageHinkley (default parameters) get the univariate stream that
  shows each change: the served price (feature drift), the served score (broken model),
  the residual label - score of each example (concept drift), whether a clean event
  lacks ``session_hint`` (field dropped), whether a raw event was filtered by preprocess
  (bot wave). Delay: their first detection at or after the change; false alarms: their
  detections before it (in the drift-free run, on all five streams).

    .venv/bin/python bench/drift.py                  # every scenario, ~5 minutes
    .venv/bin/python bench/drift.py --only bot_wave --quiet-s 0
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from river import drift

from streamlearn.agents import STEPS
from streamlearn.settings import ExplicitSettings
from streamlearn.simulate.changes import CHANGE_KINDS, Change
from streamlearn.simulate.lab import Lab, Serving
from streamlearn.simulate.lab_log import LabRecord
from streamlearn.simulate.traffic import TrafficConfig

GOAL_DELAY_S = 60.0
# As `up --simulate` sets them (up/system.py SIMULATE_DEFAULTS).
SETTINGS = ExplicitSettings(  # the shell's settings do not change the world
    models=["ctr", "ctr_tree"],
    label_horizon_s=20,
    label_allowed_lateness_s=5,
    session_gap_s=60,
    session_allowed_lateness_s=20,
    monitor_reference_records=300,
    monitor_reference_span_s=60,
    monitor_window_records=100,
)

# What a change must raise: (alert kind, feature or None for any).
EXPECTED: dict[str, tuple[tuple[str, str | None], ...]] = {
    "feature_drift": (("drift", "price"),),
    "concept_drift": (("calibration", None),),
    "field_dropped": (("null_rate", "session_hint"),),
    "bot_wave": (("pipeline", None),),
    "broken_model": (("drift", "score"), ("calibration", None)),
}


@dataclass
class Detection:
    delay_s: float | None = None
    false_alarms: int = 0


def _univariate(kind: str, records: dict[str, list[LabRecord]]) -> Iterable[tuple[int, float]]:
    """(time, value) of the stream that shows change ``kind``, in time order."""
    if kind == "feature_drift":
        for r in records["telemetry.predictions"]:
            yield r.at_ms, float(r.value["features"]["price"])
    elif kind == "broken_model":
        for r in records["telemetry.predictions"]:
            yield r.at_ms, float(r.value["score"])
    elif kind == "concept_drift":
        for r in records["training.examples"]:
            yield r.at_ms, float(r.value["label"]) - float(r.value["score"])
    elif kind == "field_dropped":
        for r in records["events.clean"]:
            yield r.at_ms, float(r.value["session_hint"] is None)
    elif kind == "bot_wave":
        kept = {str(r.value["event_id"]) for r in records["events.clean"]}
        for r in records["telemetry.events"]:
            yield r.at_ms, float(str(r.value["event_id"]) not in kept)


def _river(
    make: Callable[[], Any], stream: Iterable[tuple[int, float]], change_ms: int | None
) -> Detection:
    detector, found = make(), Detection()
    for at_ms, value in stream:
        detector.update(value)
        if not detector.drift_detected:
            continue
        if change_ms is None or at_ms < change_ms:
            found.false_alarms += 1
        elif found.delay_s is None:
            found.delay_s = (at_ms - change_ms) / 1000
    return found


def _monitor(kind: str | None, alerts: list[LabRecord], change_ms: int | None) -> Detection:
    found = Detection()
    for record in alerts:
        alert = record.value
        raised_ms = int(alert["raised_ts"].timestamp() * 1000)
        if change_ms is None or raised_ms < change_ms:
            found.false_alarms += 1
            continue
        assert kind is not None
        matches = any(
            alert["kind"] == k and (f is None or alert["labels"].get("feature") == f)
            for k, f in EXPECTED[kind]
        )
        if matches and found.delay_s is None:
            found.delay_s = (raised_ms - change_ms) / 1000
    return found


def run(kind: str | None, change_at_s: float, duration_s: float, seed: int) -> dict[str, Any]:
    changes = () if kind is None else (Change(kind, change_at_s),)  # type: ignore[arg-type]
    config = TrafficConfig(rate=100.0, users=5000, seed=seed, changes=changes)
    lab = Lab(config, settings=SETTINGS, serving=Serving(arms=("logistic", "tree")))
    started = time.perf_counter()
    lab.run(duration_s, extra_steps=[STEPS["monitor"]])
    elapsed = time.perf_counter() - started
    topics = ("telemetry.events", "telemetry.predictions", "events.clean", "training.examples",
              "monitoring.alerts", "monitoring.drift")  # fmt: skip
    records = {topic: sorted(lab.records([topic]), key=lambda r: r.at_ms) for topic in topics}
    change_ms = None if kind is None else lab.start_ms + int(change_at_s * 1000)
    result: dict[str, Any] = {
        "scenario": kind or "none",
        "simulated_s": duration_s,
        "lab_s": round(elapsed, 1),
        "windows": len(records["monitoring.drift"]),
        "monitor": _monitor(kind, records["monitoring.alerts"], change_ms),
        "alerts": [
            f"{a.value['kind']}:{a.value['labels'].get('feature')}"
            for a in records["monitoring.alerts"]
        ],
        "messages": [
            f"{a.value['raised_ts']:%H:%M:%S} {a.value['message']}"
            for a in records["monitoring.alerts"]
        ],
    }
    for name, make in (("adwin", drift.ADWIN), ("page_hinkley", drift.PageHinkley)):
        if kind is None:
            total = Detection()
            for each in CHANGE_KINDS:
                total.false_alarms += _river(make, _univariate(each, records), None).false_alarms
            result[name] = total
        else:
            result[name] = _river(make, _univariate(kind, records), change_ms)
    return result


def _cell(found: Detection, change: bool) -> str:
    if not change:
        return f"{found.false_alarms} FA"
    delay = "missed" if found.delay_s is None else f"{found.delay_s:.0f} s"
    return f"{delay}, {found.false_alarms} FA"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=CHANGE_KINDS, action="append")
    parser.add_argument("--change-at", type=float, default=300.0, help="simulated second")
    parser.add_argument("--after-s", type=float, default=180.0, help="simulated after it")
    parser.add_argument("--quiet-s", type=float, default=1800.0, help="drift-free run (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print every alert")
    args = parser.parse_args(argv)
    # Before any scenario runs: a negative second was a traceback from the change itself,
    # no time after the change reported every change "missed", and a negative drift-free
    # run was taken for none.
    if args.change_at < 0:
        parser.error(f"--change-at must be >= 0, not {args.change_at:g}")
    if args.after_s <= 0:
        parser.error(f"--after-s must be > 0, not {args.after_s:g}")
    if args.quiet_s < 0:
        parser.error(f"--quiet-s must be >= 0 (0: none), not {args.quiet_s:g}")
    kinds: list[str | None] = list(args.only or CHANGE_KINDS)
    if args.quiet_s > 0:
        kinds.append(None)
    rows = []
    for kind in kinds:
        duration = args.quiet_s if kind is None else args.change_at + args.after_s
        rows.append(run(kind, args.change_at, duration, args.seed))
        row = rows[-1]
        print(f"{row['scenario']}: {row['lab_s']} s for {row['simulated_s']:.0f} simulated s, "
              f"{row['windows']} windows, alerts {row['alerts'][:8]}", flush=True)  # fmt: skip
        if args.verbose:
            print("\n".join(f"  {m}" for m in row["messages"]))
    print()
    print(f"| scenario | monitor (goal ≤ {GOAL_DELAY_S:.0f} s, 0 FA) | ADWIN | PageHinkley |")
    print("|---|---|---|---|")
    for row in rows:
        change = row["scenario"] != "none"
        label = row["scenario"] if change else f"none ({row['simulated_s'] / 60:.0f} min)"
        print(f"| {label} | {_cell(row['monitor'], change)} | {_cell(row['adwin'], change)} | "
              f"{_cell(row['page_hinkley'], change)} |")  # fmt: skip


if __name__ == "__main__":
    main()
