"""What the tests of bench/'s command lines share: the stand-in for a broker that must not
start, and what a command said when it refused its arguments."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def no_broker() -> None:
    """Put in place of a bench's ``bench_broker``: arguments refused before any run never
    reach it."""
    raise AssertionError("a broker was started")


def refusal(
    main: Callable[[list[str]], object], argv: list[str], capsys: pytest.CaptureFixture[str]
) -> str:
    """What ``main(argv)`` wrote to stderr as it refused ``argv`` (exit 2, argparse's)."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err
