"""The figures of a running ``up``: one dict, drawn live by the view and printed at the end.

Every figure comes from where an operator would read it: the parts' Prometheus counters
(totals kept across restarts), the prediction worker's ``/v1/models``, the supervisor's
process records, and (with ``--simulate``) the simulator's own counts and ground truth.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamlearn.settings import Settings
from streamlearn.simulate import Summary
from streamlearn.up.children import Child
from streamlearn.up.probes import SystemProbe

MIN_VERSIONS = 10
_RATES = ("in", "clean", "bots", "rejected")
MIN_AUC = 0.75
JUDGED_AFTER_S = 60.0
"""A simulated run shorter than this does not judge the model by MIN_VERSIONS and MIN_AUC:
at the simulation's snapshot every 5 s, a 30 s run publishes at most 6 versions, and its
AUC is of the few hundred examples whose labels came in time."""


def figures(
    probe: SystemProbe,
    children: Sequence[Child],
    simulation: Summary | None,
    elapsed_s: float,
    *,
    final: bool = False,
) -> dict[str, Any]:
    """The figures now; rates are per second since the last poll, or with ``final`` the
    run's averages."""
    p = probe
    events = {
        "in": p.total("collector", "streamlearn_collector_accepted_total", kind="event"),
        "clean": p.total("preprocess", "streamlearn_preprocess_events_total", outcome="clean"),
        "bots": p.total("preprocess", "streamlearn_preprocess_events_total", outcome="bot"),
        "duplicates": p.total(
            "preprocess", "streamlearn_preprocess_events_total", outcome="duplicate"
        ),
        "rejected": sum(
            p.total(part, "streamlearn_rejected_records_total")
            for part in ("preprocess", "sessionise", "label-join", "learner")
        ),
        "refused_by_collector": p.total(
            "collector", "streamlearn_collector_refused_requests_total"
        ),
    }
    if final:
        per_s = {k: events[k] / elapsed_s if elapsed_s else 0.0 for k in _RATES}
    else:
        per_s = {
            "in": p.rate("collector", "streamlearn_collector_accepted_total", kind="event"),
            "clean": p.rate("preprocess", "streamlearn_preprocess_events_total", outcome="clean"),
            "bots": p.rate("preprocess", "streamlearn_preprocess_events_total", outcome="bot"),
            "rejected": sum(
                p.rate(part, "streamlearn_rejected_records_total")
                for part in ("preprocess", "sessionise", "label-join", "learner")
            ),
        }
    bot_rules = {
        rule: p.total("preprocess", "streamlearn_preprocess_bot_events_total", rule=rule)
        for rule in p.label_values("preprocess", "streamlearn_preprocess_bot_events_total", "rule")
    }
    joined = "streamlearn_label_join_records_total"
    examples = {
        what: p.total("label-join", joined, what=what)
        for what in ("positives", "negatives", "values", "unseen", "duplicate_feedback")
    }
    examples["total"] = examples["positives"] + examples["negatives"] + examples["values"]
    if final:
        examples["per_s"] = examples["total"] / elapsed_s if elapsed_s else 0.0
    else:
        examples["per_s"] = sum(
            p.rate("label-join", joined, what=w) for w in ("positives", "negatives", "values")
        )
    served_name = "streamlearn_serve_predictions_total"
    served = p.total("serve", served_name)
    models: dict[str, Any] = {}
    for name, view in sorted(p.models.items()):
        # The learner's, set at each version it publishes: the version the worker serves
        # may be one a promotion gate promoted long before, with the figures of then
        # (before the learner's first version, those are all there is).
        learner_auc = _learner_gauge(p, "streamlearn_learner_auc", name)
        learner_served = _learner_gauge(p, "streamlearn_learner_served_auc", name)
        models[name] = {
            "version": view.version,
            "versions_published": int(
                p.total("learner", "streamlearn_learner_snapshots_total", model=name)
            ),
            "auc": _or_served_version(learner_auc, view.auc),
            "served_auc": _or_served_version(learner_served, view.served_auc),
            # Resumed from an earlier run: the served figures include it (not this run's
            # ceiling's impressions). Only those of the version the worker loaded from it:
            # a resumed learner starts its figures (its gauges) anew.
            "resumed": bool(view.resumed) and learner_served is None,
            # The scores users got lately (the learner's last RECENT_EXAMPLES served
            # examples): the steady state once the run is longer than the warm-up.
            "recent_served_auc": _learner_gauge(p, "streamlearn_learner_recent_served_auc", name),
            "recent_ece": _learner_gauge(p, "streamlearn_learner_recent_ece", name),
            "versions_held_back": int(
                p.total("learner", "streamlearn_learner_versions_held_back_total", model=name)
            ),
            "trained_examples": view.trained_examples,
            "freshness_ms": view.freshness_ms(),
        }
    alerts_name = "streamlearn_monitor_alerts_total"
    monitoring = {
        "windows": int(p.total("monitor", "streamlearn_monitor_windows_total")),
        # The monitor shows every kind's counter from its start: only those raised count.
        "alerts": {
            kind: count
            for kind in p.label_values("monitor", alerts_name, "kind")
            if (count := int(p.total("monitor", alerts_name, kind=kind)))
        },
        "drifting": [
            "/".join(v for v in (labels.get("scope"), labels.get("model"), labels.get("arm"),
                                 labels.get("producer"), labels.get("feature")) if v)
            for labels in p.samples_where("monitor", "streamlearn_monitor_drifted", 1.0)
        ],
    }  # fmt: skip
    result: dict[str, Any] = {
        "elapsed_s": round(elapsed_s, 1),
        "monitoring": monitoring,
        "events": {k: int(v) for k, v in events.items()},
        "events_per_s": {k: round(v, 1) for k, v in per_s.items()},
        "bot_rules": {k: int(v) for k, v in bot_rules.items()},
        "feedback_accepted": int(
            p.total("collector", "streamlearn_collector_accepted_total") - events["in"]
        ),
        "sessions": {
            "open": int(p.total("sessionise", "streamlearn_sessionise_open_sessions")),
            "closed": int(
                p.total("sessionise", "streamlearn_sessions_emitted_total", kind="closed")
            ),
            "corrections": int(
                p.total("sessionise", "streamlearn_sessions_emitted_total", kind="correction")
            ),
        },
        "predictions": {
            "served": int(served),
            "per_s": round(
                served / elapsed_s if final and elapsed_s else p.rate("serve", served_name), 1
            ),
            "degraded": int(p.total("serve", "streamlearn_serve_degraded_predictions_total")),
            "telemetry_dropped": int(p.total("serve", "streamlearn_serve_telemetry_dropped_total")),
        },
        "examples": {k: round(v, 1) if k == "per_s" else int(v) for k, v in examples.items()},
        "models": models,
        "processes": {
            child.spec.name: {
                "state": child.state,
                "pid": child.pid,
                "starts": child.starts,
                "crashes": len(child.crashes),
                "crashed_with": [crash.ended for crash in child.crashes],
                "planned_restarts": len(child.planned_restarts),
                "restarted_for": [exit.ended for exit in child.planned_restarts],
                "exit_code": child.exit_code,
                "killed": child.killed,
                "clean": child.exited_cleanly,
                "unclean": child.unclean_stop,
            }
            for child in children
        },
    }
    if simulation is not None:
        result["simulation"] = {
            "truth_auc_ceiling": simulation.truth_auc_so_far(),
            "ctr_by_arm": simulation.ctr_by_arm,
            "impressions_by_arm": {a: c["impressions"] for a, c in sorted(simulation.arms.items())},
            "predict_ms": simulation.predict_ms,
            "generated": dict(simulation.generated),
            "actors": dict(simulation.actors),
            "malformed_refused": simulation.malformed_refused,
            "dropped": simulation.dropped,
            "predict_errors": simulation.predict_errors,
        }
    return result


def _or_served_version(gauge: float | None, served_version_s: float | None) -> float | None:
    """A learner's gauge, else the figure of the version the worker serves (rounded)."""
    if gauge is not None:
        return gauge
    return None if served_version_s is None else round(served_version_s, 4)


def _learner_gauge(probe: SystemProbe, metric: str, model: str) -> float | None:
    """A learner gauge of ``model``; None before the learner set it."""
    for (name, labels), value in probe.samples.get("learner", {}).items():
        if name == metric and ("model", model) in labels:
            return round(value, 4)
    return None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def _said(figure: object) -> str:
    """A figure in a check's detail: one not there yet said so, not as Python's None."""
    return "not measured yet" if figure is None else str(figure)


def _learned(
    model: str,
    served: dict[str, Any],
    elapsed_s: float,
    ceiling: float | None,
    candidate_window: int | None = None,
) -> list[Check]:
    """Whether ``model`` learned the simulated world: enough versions and its prequential
    AUC, in a run long enough to judge them by."""
    versions = int(served.get("versions_published") or 0)
    auc = served.get("auc")
    if elapsed_s < JUDGED_AFTER_S:
        return [
            Check(
                f"{model} learned the simulated world: not judged in a {elapsed_s:.0f} s run",
                True,
                f"{JUDGED_AFTER_S:.0f} s or more judges its versions (>= {MIN_VERSIONS}) and "
                f"prequential AUC (>= {MIN_AUC}); {versions} published, AUC {_said(auc)}",
            )
        ]
    resumed = " since its first version, earlier runs included" if served.get("resumed") else ""
    return [
        _versions_check(model, versions, candidate_window),
        Check(
            f"{model} prequential AUC >= {MIN_AUC}",
            auc is not None and auc >= MIN_AUC,
            f"{_said(auc)} (served {_said(served.get('served_auc'))}{resumed}, "
            f"ceiling {_said(ceiling)})",
        ),
    ]


def candidate_gate_windows(settings: Settings) -> dict[str, int]:
    """Model → the window of its promotion gate, for the models whose gate judges
    candidates (``STREAMLEARN_MODEL_PROMOTION``)."""
    return {
        name: gate.window
        for name, gate in settings.model_promotion.items()
        if gate.judge == "candidate"
    }


def _versions_check(model: str, versions: int, candidate_window: int | None) -> Check:
    """Enough versions for the snapshot cadence; with a gate that judges candidates, one
    is published per window of examples (docs/learning.md), so any counts."""
    if candidate_window is None:
        return Check(f"{model} reached {MIN_VERSIONS} versions", versions >= MIN_VERSIONS,
                     f"{versions} published")  # fmt: skip
    return Check(
        f"{model} published versions",
        versions >= 1,
        f"{versions} published (its gate judges candidates: one per window of "
        f"{candidate_window:,} examples, not one per snapshot)",
    )


def checks(
    final: dict[str, Any], model: str = "ctr", candidate_windows: Mapping[str, int] | None = None
) -> list[Check]:
    """What a healthy run shows: no crash and clean exits; with a simulation also data
    through every stage, filtered noise, and a model that learned the simulated world.
    ``candidate_windows``: model → the window of its gate, if it judges candidates."""
    events, examples = final["events"], final["examples"]
    processes = final["processes"]
    crashed = sorted(
        f"{n} ({'; '.join(p['crashed_with'])})" if p.get("crashed_with") else n
        for n, p in processes.items()
        if p["crashes"]
    )
    unclean = sorted(
        f"{n} ({p['unclean']})" if p.get("unclean") else n
        for n, p in processes.items()
        if p["state"] == "stopped" and not p["clean"]
    )
    # Restarts a part asked for (a worker whose topics grew partitions) are no crash, but
    # the operator sees them beside the check.
    planned = sorted(
        f"{n} {p['planned_restarts']}: a topic of its grew partitions"
        for n, p in processes.items()
        if p.get("planned_restarts")
    )
    crashed_detail = ", ".join(crashed) or "none"
    if planned:
        crashed_detail += f" (planned restarts: {', '.join(planned)})"
    result = [
        Check("no part crashed", not crashed, crashed_detail),
        Check("every process exited cleanly", not unclean, ", ".join(unclean) or "all"),
    ]
    behind = final.get("agents_behind")
    if behind is not None:
        # A partition not being read leaves every other figure normal (docs/reliability.md).
        late = ", ".join(f"{agent} {count} records" for agent, count in behind.items() if count)
        result.append(
            Check(
                "every agent read its input to the end",
                not late,
                f"behind: {late}" if late else "all caught up",
            )
        )
    simulation = final.get("simulation")
    if simulation is None:
        return result
    served = final["models"].get(model, {})
    return [
        Check(
            "events flowed through every stage",
            all(
                (
                    events["in"] > 0,
                    events["clean"] > 0,
                    final["sessions"]["open"] + final["sessions"]["closed"] > 0,
                    final["predictions"]["served"] > 0,
                    examples["total"] > 0,
                    any(m["versions_published"] > 0 for m in final["models"].values()),
                )
            ),
            f"in {events['in']}, clean {events['clean']}, predictions "
            f"{final['predictions']['served']}, examples {examples['total']}",
        ),
        *result,
        *_learned(
            model,
            served,
            final["elapsed_s"],
            simulation["truth_auc_ceiling"],
            (candidate_windows or {}).get(model),
        ),
        Check(
            "bots, duplicates and malformed events filtered and counted",
            events["bots"] > 0 and events["duplicates"] > 0 and simulation["malformed_refused"] > 0,
            f"bots {events['bots']}, duplicates {events['duplicates']}, "
            f"malformed refused {simulation['malformed_refused']}",
        ),
    ]
