"""The order `scripts/test` hands test files to its two workers (tests/file_order.py)."""

from __future__ import annotations

import itertools

from tests.conftest import TESTS_DIR
from tests.file_order import SECONDS, WHOLE_SYSTEM, file_order


def test_every_file_with_measured_seconds_exists() -> None:
    """A file renamed or removed would drop out of the order without a word, and the long
    file it was could end up last again."""
    missing = [name for name in [*SECONDS, *WHOLE_SYSTEM] if not (TESTS_DIR / name).is_file()]
    assert missing == []
    assert set(SECONDS) >= WHOLE_SYSTEM


def test_whole_system_files_come_one_at_a_time_with_lighter_files_between() -> None:
    files = sorted({*SECONDS, "integration/test_a.py", "integration/test_b.py"})
    order = file_order(files)
    assert sorted(order) == files
    heavy = [index for index, name in enumerate(order) if name in WHOLE_SYSTEM]
    assert order[0] == "integration/test_replay.py"  # the longest first
    for here, following in itertools.pairwise(heavy):
        between = order[here + 1 : following]
        assert sum(SECONDS.get(name, 10) for name in between) >= SECONDS[order[here]]
    assert order[-2:] == ["integration/test_a.py", "integration/test_b.py"]


def test_a_selection_keeps_its_files_once_each() -> None:
    assert file_order(["e2e/test_chaos.py", "unit/test_x.py", "e2e/test_chaos.py"]) == [
        "e2e/test_chaos.py",
        "unit/test_x.py",
    ]


def test_the_test_command_keeps_that_order() -> None:
    """xdist's default for --dist loadfile orders files by their number of tests, which
    put the one-test e2e files (minutes each) last."""
    script = (TESTS_DIR.parent / "scripts" / "test").read_text()
    assert "--dist loadfile --no-loadscope-reorder" in script
