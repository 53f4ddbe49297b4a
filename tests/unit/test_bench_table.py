"""scripts/bench_table.py: the README's benchmark table from what scripts/bench collected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import load_script

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_table.py"

bench_table = load_script(SCRIPT, "bench_table")

REPLAY_OUT = """\
| path | examples | examples/s | vs in-process |
|---|---|---|---|
| in-process OnlineLearner on decoded examples | 30,000 | 33,036 | 1.00 |
| Kafka read only (no decode, no learning) | 30,000 | 287,411 | 8.70 |
| replay model (Kafka read + decode + learn + sign) | 30,000 | 22,110 | 0.67 |
| replay verify, one version from scratch | 30,000 | 9,171 | 0.28 |
"""
DRIFT_OUT = """\
field_dropped: 3 s for 480 simulated s, 8 windows, alerts []

| scenario | monitor (goal ≤ 60 s, 0 FA) | ADWIN | PageHinkley |
|---|---|---|---|
| feature_drift | 35 s, 0 FA | 1 s, 5 FA | 0 s, 1048 FA |
| concept_drift | 43 s, 1 FA | 28 s, 2 FA | 29 s, 3 FA |
| bot_wave | missed, 0 FA | 0 s, 0 FA | 1 s, 0 FA |
| none (30 min) | 2 FA | 34 FA | 6692 FA |
"""
LEARNING_OUT = """\
learning lab: 30 simulated minutes, seed 0, steady state = last 5 min
  as_labelled: 120 s wall, 118 s CPU (15x real time per CPU second), 9000 predictions
strategy               model     served ceil       gap logloss truth  excess ece    preq
as_labelled            ctr       0.8026 0.8204  0.0178 0.5305 0.5079  0.0226 0.0087 0.80
as_labelled            ctr_tree  0.7582 0.8179  0.0597 0.5500 0.5079  0.0421 0.0100 0.75
    served AUC per minute: 0.700 0.750
"""
PREDICT_OUT = """\
worker / minimal handler (by server CPU per request): 0.58x (goal >= 0.85); p99 3.51x
batched: server CPU per prediction 27.5 us, 4.04x the in-process model call (6.8 us; goal <= 2)
"""
PREDICT_ROUNDS_OUT = (
    PREDICT_OUT
    + "median of 3 runs: worker / minimal handler (by server CPU per request) 0.61x (goal >= "
    "0.85; 0.58, 0.61, 0.63); batched CPU per prediction 3.90x the in-process model call "
    "(goal <= 2; 4.04, 3.90, 3.80)\n"
)
LEARNER_OUT = """\
| round | in-process examples/s | learner agent examples/s | ratio | CPU | CPU ratio |
|---|---|---|---|---|---|
| 1 | 30,000 | 25,000 | 0.83 | 30.0 µs / 42.0 µs | 0.71 |

learner agent (with its decoding process) 0.84x in-process by examples/s (0.86x by the median \
cadence), 0.71x by CPU per example (median of 3 rounds; 20,000 examples, measured between \
snapshots: 18,000); 2 CPUs
"""
SERDE_OUT = """\
TelemetryEvent, 2000 records, median of 3 runs
| operation | plain fastavro | AvroSerde | ratio |
|---|---|---|---|
| encode | 7.95 µs | 8.10 µs | 1.02x |
| decode | 9.19 µs | 10.16 µs | 1.11x |
"""


def _result(directory: Path, name: str, out: str, *, status: int = 0, data: object = None) -> None:
    (directory / f"{name}.out").write_text(out)
    (directory / f"{name}.cmd").write_text(f".venv/bin/python bench/{name}.py --x 1\n")
    (directory / f"{name}.status").write_text(f"{status}\n")
    if data is not None:
        (directory / f"{name}.json").write_text(json.dumps(data))


def test_each_benchmarks_headline_figures_are_read_from_its_output() -> None:
    assert bench_table.replay(REPLAY_OUT, None) == [
        ("replay model (Kafka read + decode + learn + sign) vs in-process learner", "0.67"),
        ("replay verify, one version from scratch vs in-process learner", "0.28"),
    ]
    assert bench_table.drift(DRIFT_OUT, None) == [
        ("monitor: slowest detection, false alarms, missed", "43 s, 3 FA, 1 missed")
    ]
    assert bench_table.learning(LEARNING_OUT, None) == [
        ("as_labelled ctr: served AUC / ceiling", "0.8026 / 0.8204"),
        ("as_labelled ctr_tree: served AUC / ceiling", "0.7582 / 0.8179"),
    ]
    assert bench_table.predict(PREDICT_OUT, None) == [
        ("worker vs minimal handler, server CPU per request", "0.58x"),
        ("batched CPU per prediction vs in-process model call", "4.04x"),
    ]
    assert [value for _, value in bench_table.serde(SERDE_OUT, None)] == ["1.02x", "1.11x"]
    # With --goal-rounds the goals' figures are the medians of every run, and say so.
    assert bench_table.predict(PREDICT_ROUNDS_OUT, None) == [
        ("worker vs minimal handler, server CPU per request", "0.61x (median of 3)"),
        ("batched CPU per prediction vs in-process model call", "3.90x (median of 3)"),
    ]
    assert bench_table.learner(LEARNER_OUT, None) == [
        ("learner agent vs in-process, examples/s", "0.84 (median of 3)"),
        ("learner agent vs in-process, examples/s, median cadence", "0.86"),
        ("learner agent vs in-process, CPU per example", "0.71"),
    ]


def test_the_ingest_figures_are_the_medians_its_json_gives() -> None:
    data = {
        "agents": ["preprocess", "sessionise"],
        "rounds": [{"src": None}, {"src": None}, {"src": "/old/src"}],
        "candidate": {"committed_vs_raw": 0.8149, "output_span_vs_raw": 1.1},
    }
    with_quix = {**data, "rounds": [
        {"src": None, "output_span_rate": 2.0, "quix_rate": 1.0},
        {"src": None, "output_span_rate": 3.0, "quix_rate": 1.0},
    ]}  # fmt: skip
    assert bench_table.ingest("", with_quix)[-1] == (
        "preprocess output span vs Quix Streams",
        "2.50",
    )
    assert bench_table.ingest("", data) == [
        ("preprocess + sessionise until committed vs raw loop", "0.81"),
        ("preprocess output span (preprocess + sessionise) vs raw loop", "1.10 (median of 2)"),
    ]


def test_a_failed_benchmark_gets_a_row_saying_so(tmp_path: Path) -> None:
    _result(tmp_path, "replay", REPLAY_OUT)
    _result(tmp_path, "serde", "Traceback ...", status=1)
    rows = bench_table.collect(tmp_path, "2026-12-01")
    assert [(r.benchmark, r.value) for r in rows] == [
        ("replay", "0.67"), ("replay", "0.28"), ("serde", "failed (exit 1)"),
    ]  # fmt: skip
    assert rows[0].command == ".venv/bin/python bench/replay.py --x 1"
    assert rows[0].date == "2026-12-01"


def test_the_readme_table_keeps_the_rows_of_benchmarks_not_run_now(tmp_path: Path) -> None:
    readme = f"# Title\n\n## Benchmarks\n\n{bench_table.START}\n{bench_table.END}\n\nmore text\n"
    _result(tmp_path, "replay", REPLAY_OUT)
    _result(tmp_path, "serde", SERDE_OUT)
    first = bench_table.merge(readme, bench_table.collect(tmp_path, "2026-11-30"), "Run one.")
    (tmp_path / "serde.out").unlink()
    _result(tmp_path, "replay", REPLAY_OUT.replace("0.67", "0.81"))
    second = bench_table.merge(first, bench_table.collect(tmp_path, "2026-12-01"), "Run two.")
    rows = bench_table.parse_table(second.split(bench_table.START)[1])
    assert [(r.benchmark, r.value, r.date) for r in rows] == [
        ("replay", "0.81", "2026-12-01"), ("replay", "0.28", "2026-12-01"),
        ("serde", "1.02x", "2026-11-30"), ("serde", "1.11x", "2026-11-30"),
    ]  # fmt: skip
    assert second.startswith("# Title\n\n## Benchmarks\n\n<!-- bench:start -->\nRun two.\n")
    assert second.endswith(f"{bench_table.END}\n\nmore text\n")
    assert bench_table.merge(second, [], "Run two.") == second


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(SystemExit, match="markers"):
        bench_table.merge("# no table here\n", [], "")


def test_a_cell_with_a_pipe_survives_the_round_trip() -> None:
    row = bench_table.Row("predict", "a | b", "1.0", "2026-12-01", "python x.py --low ''")
    assert bench_table.parse_table(row.render()) == [row]


def test_the_machine_names_its_cores() -> None:
    assert " cores, " in bench_table.machine()


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["--help"], 0, "scripts/bench --only ingest,serde"),
        (["--only"], 2, "--only needs names"),
        (["--only", ""], 2, "--only needs names"),
        (["--nope"], 2, "unknown argument --nope"),
        (["--only", "serde,predcit"], 2, "unknown benchmark 'predcit' in --only; known: ingest,"),
    ],
)
def test_scripts_bench_answers_help_and_a_missing_value_before_running_anything(
    args: list[str], code: int, said: str
) -> None:
    """Found by a new user: `--help` was an unknown argument; `--only` without names was
    bash's "$2: unbound variable"."""
    import subprocess

    script = SCRIPT.parent / "bench"
    result = subprocess.run(
        ["bash", str(script), *args], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == code, result.stdout + result.stderr
    assert said in result.stdout + result.stderr
