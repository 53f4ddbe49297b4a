"""Every Prometheus metric name read anywhere (up's report, the dashboard's scraped
counters, the chart's alert rules and Grafana dashboard, the docs) is one a part declares.

A name read back is a string: a typo, or a metric renamed on one side only, reads as a
silent 0 (a labelled counter exports nothing before its first increment, so a scrape
cannot tell "absent" from "not yet"), and an alert rule on it never fires. The declared
names are the first argument of every metric constructor in ``src/`` (an f-string stands
for any text in its fields)."""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "streamlearn"
CONSTRUCTORS = frozenset(
    {"Counter", "Gauge", "Histogram", "Summary", "Info", "Enum", "LatencyHistogram", "expose",
     "CounterMetricFamily", "GaugeMetricFamily", "HistogramMetricFamily"}
)  # fmt: skip
SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count")
NAME = re.compile(r"\bstreamlearn_[a-z0-9_]*[a-z0-9](?![a-z0-9_*{])")
"""A metric name as read (not a family's prefix: ``streamlearn_learner_*``)."""
TARGET_LABELS = frozenset({"streamlearn_part"})
"""Labels the chart's monitors put on every target (templates/monitoring.yaml), read by the
alert rules beside metric names: no metric."""
READERS = ("up", "dashboard")
"""Packages that read metrics back: their literals are names read, never declarations."""


def _called(node: ast.Call) -> str | None:
    function = node.func
    if isinstance(function, ast.Name):
        return function.id
    if isinstance(function, ast.Attribute):
        return function.attr
    return None


def _pattern(argument: ast.expr) -> str | None:
    """The regex of the metric name ``argument`` spells (None: not a literal)."""
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return re.escape(argument.value)
    if isinstance(argument, ast.JoinedStr):
        parts = []
        for value in argument.values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                parts.append(re.escape(value.value))
            else:
                parts.append("[a-z0-9_]+")
        return "".join(parts)
    return None


@functools.cache
def declared_patterns() -> tuple[re.Pattern[str], ...]:
    patterns = []
    for path in sorted(SOURCE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and _called(node) in CONSTRUCTORS and node.args
        ]
        for call in calls:
            pattern = _pattern(call.args[0])
            if pattern is not None and pattern.startswith("streamlearn_"):
                patterns.append(re.compile(pattern))
        reader = path.relative_to(SOURCE).parts[0] in READERS
        if not reader and any(_pattern(call.args[0]) is None for call in calls):
            # Names from a table (a constructor called with a variable): the module's
            # metric-like literals are its declarations.
            patterns += [
                re.compile(re.escape(node.value))
                for node in ast.walk(tree)
                if isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and NAME.fullmatch(node.value)
            ]
    return tuple(patterns)


def is_declared(name: str, patterns: tuple[re.Pattern[str], ...]) -> bool:
    candidates = [name] + [name.removesuffix(s) for s in SUFFIXES if name.endswith(s)]
    return any(p.fullmatch(c) for p in patterns for c in candidates)


def _read_in(path: Path) -> Iterator[str]:
    yield from NAME.findall(path.read_text())


@functools.cache
def read_names() -> dict[str, set[str]]:
    """Each metric name read, with the files that read it."""
    files = [
        *sorted((SOURCE / "up").rglob("*.py")),
        *sorted((SOURCE / "dashboard").glob("*.py")),
        *sorted((ROOT / "deploy").rglob("*.yaml")),
        *sorted((ROOT / "deploy").rglob("*.json")),
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "README.md",
    ]
    read: dict[str, set[str]] = {}
    for path in files:
        for name in _read_in(path):
            if name not in TARGET_LABELS:
                read.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return read


def test_the_scan_finds_the_metrics_it_should() -> None:
    patterns = declared_patterns()
    # A plain counter, a labelled gauge, an exposed dataclass and an f-string name.
    for name in (
        "streamlearn_preprocess_events_total",
        "streamlearn_sessionise_open_sessions",
        "streamlearn_label_join_records_total",
        "streamlearn_learner_ctr_records_total",
        "streamlearn_serve_request_seconds_bucket",
    ):
        assert is_declared(name, patterns), name
    assert not is_declared("streamlearn_preprocess_event_total", patterns)
    read = read_names()
    assert "streamlearn_serve_predictions_total" in read
    assert any(path.startswith("deploy/") for path in read["streamlearn_serve_predictions_total"])


@pytest.mark.parametrize("name", sorted(read_names()))
def test_every_metric_name_read_is_declared(name: str) -> None:
    assert is_declared(name, declared_patterns()), (name, sorted(read_names()[name]))
