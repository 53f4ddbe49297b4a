"""bench/serde.py's command line: sizes that measure nothing refused, not measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_support import refusal
from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "serde.py"

bench_serde = load_script(SCRIPT, "bench_serde")


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # Found by a new user: ZeroDivisionError.
        (["--records", "0"], "--records must be >= 1, not 0"),
        # A table of negative microseconds per record (-0.02 µs), ratios and all.
        (["--records", "-5"], "--records must be >= 1, not -5"),
        # statistics.StatisticsError: no median for empty data.
        (["--repeat", "0"], "--repeat must be >= 1, not 0"),
    ],
)  # fmt: skip
def test_sizes_that_measure_nothing_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    assert said in refusal(bench_serde.main, argv, capsys)
