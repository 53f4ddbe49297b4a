"""The live terminal view of ``up`` (rich), drawn from :func:`streamlearn.up.report.figures`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def _n(value: float | int | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _rate(value: float | None) -> str:
    return "" if not value else f"{value:,.1f}/s"


def _ms(pair: dict[str, float] | None) -> str:
    return "-" if not pair else f"{pair['p50']:,.1f} / {pair['p99']:,.1f} ms"


def _auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", expand=False, pad_edge=False)
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    return table


def render(
    figures: dict[str, Any],
    duration_s: float | None,
    crashes: list[str],
    planned_restarts: Sequence[str] = (),
) -> Group:
    events, rates = figures["events"], figures["events_per_s"]
    simulation = figures.get("simulation") or {}
    until = f" of {duration_s:.0f}s" if duration_s else " (Ctrl-C stops)"
    parts: list[RenderableType] = [
        Text(f"streamlearn up: {figures['elapsed_s']:.0f}s{until}", style="bold")
    ]

    data = _table("telemetry", "", "total", "rate")
    data.add_row("events in", _n(events["in"]), _rate(rates["in"]))
    data.add_row("clean", _n(events["clean"]), _rate(rates["clean"]))
    data.add_row("bots filtered", _n(events["bots"]), _rate(rates["bots"]))
    data.add_row("duplicates dropped", _n(events["duplicates"]), "")
    data.add_row("rejected (events.rejected)", _n(events["rejected"]), _rate(rates["rejected"]))
    data.add_row("refused by collector", _n(events["refused_by_collector"]), "")
    data.add_row("feedback in", _n(figures["feedback_accepted"]), "")

    loop = _table("feedback loop", "", "total", "rate")
    sessions, examples = figures["sessions"], figures["examples"]
    predictions = figures["predictions"]
    loop.add_row("open sessions", _n(sessions["open"]), "")
    loop.add_row("closed sessions", _n(sessions["closed"]), "")
    loop.add_row("predictions served", _n(predictions["served"]), _rate(predictions["per_s"]))
    loop.add_row("  degraded", _n(predictions["degraded"]), "")
    loop.add_row("training examples", _n(examples["total"]), _rate(examples["per_s"]))
    loop.add_row("  served, never seen", _n(examples["unseen"]), "")
    loop.add_row("predict p50 / p99", _ms(simulation.get("predict_ms")), "")
    parts.append(_side_by_side(data, loop))

    # "last": over the learner's last served examples (the steady state once warmed up);
    # "served": since the learner started.
    models = _table(
        "models", "model", "version", "published", "AUC", "served AUC", "served, last",
        "ECE, last", "ceiling", "freshness",
    )  # fmt: skip
    ceiling = simulation.get("truth_auc_ceiling")
    resumed = False
    for name, model in figures["models"].items():
        ece = model.get("recent_ece")
        # A model resumed from an earlier run: its served figures include that run.
        mark = "*" if model.get("resumed") else ""
        resumed = resumed or bool(mark)
        models.add_row(
            name,
            _n(model["version"]),
            _n(model["versions_published"]),
            _auc(model["auc"]),
            _auc(model["served_auc"]) + mark,
            _auc(model.get("recent_served_auc")) + mark,
            "-" if ece is None else f"{ece:.4f}",
            _auc(ceiling),
            _ms(model["freshness_ms"]),
        )
    arms = _table("experiment arms", "arm", "impressions", "CTR")
    for arm, ctr in (simulation.get("ctr_by_arm") or {}).items():
        arms.add_row(arm, _n(simulation["impressions_by_arm"].get(arm)), f"{ctr:.2%}")
    if resumed:
        models.caption = (
            "* resumed from an earlier run in this data directory: served since its first "
            "version, not comparable with this run's ceiling"
        )
    parts.append(models)

    processes = _table("processes", "part", "state", "pid", "restarts")
    for name, process in figures["processes"].items():
        style = "green" if process["state"] == "running" else "yellow"
        processes.add_row(
            name, Text(process["state"], style=style), str(process["pid"] or "-"),
            _n(max(0, process["starts"] - 1)),
        )  # fmt: skip
    parts.append(_side_by_side(processes, arms))
    monitoring = figures.get("monitoring") or {}
    if monitoring.get("windows"):
        alerts = monitoring["alerts"]
        raised = ", ".join(f"{kind} {count}" for kind, count in alerts.items()) or "none"
        drifting = monitoring["drifting"]
        parts.append(
            Text.assemble(
                ("data monitor: ", "bold"), f"{monitoring['windows']:,} windows, alerts: ",
                (raised, "red" if alerts else "green"),
                *(("; drifting now: ", ""), (", ".join(drifting[:6]), "yellow"))
                if drifting else (),
            )
        )  # fmt: skip
    # A restart a part asked for is no fault: said in its own colour, not a crash's red.
    parts.extend(Text(line, style="yellow") for line in planned_restarts[-3:])
    parts.extend(Text(line, style="red") for line in crashes[-3:])
    return Group(*parts)


def _side_by_side(left: Table, right: Table) -> Table:
    grid = Table.grid(padding=(0, 4))
    grid.add_row(left, right)
    return grid


def render_checks(results: list[tuple[str, bool, str]]) -> Group:
    lines = [
        Text.assemble(("PASS " if passed else "FAIL ", "green" if passed else "red"), name,
                      f": {detail}")
        for name, passed, detail in results
    ]  # fmt: skip
    return Group(*lines)
