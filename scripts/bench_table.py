#!/usr/bin/env python3
"""The README's benchmark table, from what ``scripts/bench`` collected.

``scripts/bench`` runs each benchmark with its output in ``RESULTS/NAME.out`` (and, for
those that write one, ``RESULTS/NAME.json``) and its command line in ``RESULTS/NAME.cmd``,
then calls ``bench_table.py RESULTS``. Each benchmark's headline figures are read from
its output (:data:`EXTRACTORS`; the printed tables and summary lines each bench already
prints, so benches need not change), and the table between the README's
``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers is rewritten: rows of the
benchmarks run now are replaced, rows of the others are kept as they were (with their
own date), so running a few benchmarks updates just their rows. With ``--print`` the
table is printed and the README left alone (``scripts/bench --quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
HEADER = "| benchmark | figure | value | date | command |\n|---|---|---|---|---|\n"


@dataclass(frozen=True)
class Row:
    benchmark: str
    figure: str
    value: str
    date: str = ""
    command: str = ""

    def render(self) -> str:
        cells = [self.benchmark, self.figure, self.value, self.date, f"`{self.command}`"]
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


Figures = list[tuple[str, str]]
"""(figure, value) pairs of one benchmark run."""


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in ``text`` (headers and rules left out)."""
    lines = [line.strip() for line in text.splitlines()]
    rows = []
    for index, line in enumerate(lines):
        if not (line.startswith("|") and line.endswith("|")) or _is_rule(line):
            continue
        if index + 1 < len(lines) and _is_rule(lines[index + 1]):
            continue  # a header
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _is_rule(line: str) -> bool:
    return line.startswith("|") and set(line) <= set("|-: ")


def _search(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text)
    return found.group(1) if found else None


def ingest(text: str, data: dict[str, Any] | None) -> Figures:
    if data is not None and "candidate" in data:
        agents = " + ".join(data["agents"])
        figures = data["candidate"]
        ours = [r for r in data["rounds"] if r["src"] is None]
        rows = [
            (f"{agents} until committed vs raw loop", f"{figures['committed_vs_raw']:.2f}"),
            (f"preprocess output span ({agents}) vs raw loop",
             f"{figures['output_span_vs_raw']:.2f} (median of {len(ours)})"),
        ]  # fmt: skip
        quix = [r["output_span_rate"] / r["quix_rate"] for r in ours if "quix_rate" in r]
        if quix:
            rows.append(
                ("preprocess output span vs Quix Streams", f"{statistics.median(quix):.2f}")
            )
        return rows
    return [(row[0], row[-1]) for row in table_rows(text) if row[0].startswith("streamlearn")]


def predict(text: str, data: dict[str, Any] | None) -> Figures:
    # With --goal-rounds: the medians of every run, one line.
    median = re.search(
        r"median of (\d+) runs: worker / minimal handler \(by server CPU per request\) "
        r"([\d.]+)x.*batched CPU per prediction ([\d.]+)x",
        text,
    )
    if median:
        runs, cpu, batch = median.groups()
        return [
            ("worker vs minimal handler, server CPU per request", f"{cpu}x (median of {runs})"),
            ("batched CPU per prediction vs in-process model call",
             f"{batch}x (median of {runs})"),
        ]  # fmt: skip
    figures = []
    cpu = _search(r"worker / minimal handler \(by server CPU per request\): ([\d.]+)x", text)
    if cpu:
        figures.append(("worker vs minimal handler, server CPU per request", f"{cpu}x"))
    batch = _search(r"([\d.]+)x the in-process model call", text)
    if batch:
        figures.append(("batched CPU per prediction vs in-process model call", f"{batch}x"))
    return figures


def serde(text: str, data: dict[str, Any] | None) -> Figures:
    return [(f"AvroSerde {row[0]} vs plain fastavro", row[-1]) for row in table_rows(text)]


def replay(text: str, data: dict[str, Any] | None) -> Figures:
    return [
        (f"{row[0]} vs in-process learner", row[-1])
        for row in table_rows(text)
        if row[0].startswith("replay")
    ]


def drift(text: str, data: dict[str, Any] | None) -> Figures:
    delays, alarms, missed = [], 0, 0
    for row in table_rows(text):
        cell = row[1]
        alarms += int(_search(r"(\d+) FA", cell) or 0)
        if row[0].startswith("none"):
            continue
        if cell.startswith("missed"):
            missed += 1
        elif (delay := _search(r"^(\d+) s", cell)) is not None:
            delays.append(int(delay))
    if not delays and not missed:
        return []
    slowest = f"{max(delays)} s" if delays else "none seen"
    return [("monitor: slowest detection, false alarms, missed",
             f"{slowest}, {alarms} FA, {missed} missed")]  # fmt: skip


def learning(text: str, data: dict[str, Any] | None) -> Figures:
    figures = []
    for line in text.splitlines():
        words = line.split()
        if len(words) > 3 and words[1] in ("ctr", "ctr_tree") and not line.startswith(" "):
            figures.append(
                (f"{words[0]} {words[1]}: served AUC / ceiling", f"{words[2]} / {words[3]}")
            )
    return figures


def learner(text: str, data: dict[str, Any] | None) -> Figures:
    """bench/learner.py's summary line: the agent against in-process learning."""
    found = re.search(
        r"learner agent \(with its decoding process\) ([\d.]+)x in-process by examples/s "
        r"\(([\d.]+)x by the median cadence\), ([\d.]+)x by CPU per example "
        r"\(median of (\d+) rounds",
        text,
    )
    if found is None:
        return []
    rate, cadence, cpu, rounds = found.groups()
    return [
        ("learner agent vs in-process, examples/s", f"{rate} (median of {rounds})"),
        ("learner agent vs in-process, examples/s, median cadence", cadence),
        ("learner agent vs in-process, CPU per example", cpu),
    ]


EXTRACTORS: dict[str, Callable[[str, dict[str, Any] | None], Figures]] = {
    "ingest-preprocess": ingest,
    "ingest-sessionise": ingest,
    "predict": predict,
    "learner": learner,
    "replay": replay,
    "serde": serde,
    "drift": drift,
    "learning": learning,
}


def collect(results: Path, date: str) -> list[Row]:
    """Rows of every benchmark with an output in ``results``; a benchmark that failed or
    printed nothing recognisable gets a row saying so."""
    rows = []
    for name, extract in EXTRACTORS.items():
        out = results / f"{name}.out"
        if not out.exists():
            continue
        command = (results / f"{name}.cmd").read_text().strip()
        data_file = results / f"{name}.json"
        data = json.loads(data_file.read_text()) if data_file.exists() else None
        status = results / f"{name}.status"
        failed = status.exists() and status.read_text().strip() != "0"
        figures = [] if failed else extract(out.read_text(), data)
        if not figures:
            why = f"failed (exit {status.read_text().strip()})" if failed else "no figures found"
            figures = [("—", why)]
        rows += [Row(name, figure, value, date, command) for figure, value in figures]
    return rows


def machine() -> str:
    """Cores and CPU model of this machine (/proc/cpuinfo)."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = _search(r"model name\s*:\s*(.+)", cpuinfo.read_text()) or model
    return f"{os.cpu_count()} cores, {model.strip()}"


def parse_table(block: str) -> list[Row]:
    rows = []
    for line in block.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) == 5 and cells[0] not in ("benchmark", "---"):
            rows.append(Row(cells[0], cells[1], cells[2], cells[3], cells[4].strip("`")))
    return rows


def render(rows: list[Row], about: str) -> str:
    order = {name: index for index, name in enumerate(EXTRACTORS)}
    ordered = sorted(rows, key=lambda row: order.get(row.benchmark, len(order)))
    return f"{about}\n\n{HEADER}" + "".join(row.render() + "\n" for row in ordered)


def merge(readme: str, new: list[Row], about: str) -> str:
    """``readme`` with the table between the markers holding ``new`` and the rows kept of
    the benchmarks not in ``new``."""
    if START not in readme or END not in readme:
        raise SystemExit(f"bench_table: the README has no {START} … {END} markers")
    head, rest = readme.split(START, 1)
    block, tail = rest.split(END, 1)
    ran = {row.benchmark for row in new}
    kept = [row for row in parse_table(block) if row.benchmark not in ran]
    return f"{head}{START}\n{render(kept + new, about)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="scripts/bench's results directory")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--print", action="store_true", help="print the table, leave the README")
    parser.add_argument("--note", default="", help="said after the machine (e.g. the load)")
    args = parser.parse_args(argv)
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    rows = collect(args.results, date)
    about = f"Last `scripts/bench` run: {date}, {machine()}{args.note}."
    if args.print:
        sys.stdout.write(render(rows, about))
        return 0
    text = args.readme.read_text()
    args.readme.write_text(merge(text, rows, about))
    print(f"bench_table: {len(rows)} rows written to {args.readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
