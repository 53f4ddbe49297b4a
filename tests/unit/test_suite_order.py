"""The order `scripts/test` hands test files to its two workers (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import SLOWEST_FILES_FIRST, TESTS_DIR


def test_every_file_listed_as_slowest_exists_once() -> None:
    """A file renamed or removed would drop out of the order without a word, and the long
    file it was could end up last again."""
    assert len(set(SLOWEST_FILES_FIRST)) == len(SLOWEST_FILES_FIRST)
    missing = [name for name in SLOWEST_FILES_FIRST if not (TESTS_DIR / name).is_file()]
    assert missing == []


def test_the_test_command_keeps_that_order() -> None:
    """xdist's default for --dist loadfile orders files by their number of tests, which
    put the one-test e2e files (minutes each) last."""
    script = (TESTS_DIR.parent / "scripts" / "test").read_text()
    assert "--dist loadfile --no-loadscope-reorder" in script
