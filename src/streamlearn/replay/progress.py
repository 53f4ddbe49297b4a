"""Progress of a replay on stderr: a bar with rate and ETA on a terminal, a line every few
seconds otherwise (CI logs, ``kubectl logs``)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

Advance = Callable[[int], None]
LINE_EVERY_S = 5.0


def _line(description: str, done: int, total: int, elapsed: float) -> str:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = f"{(total - done) / rate:.0f}s" if rate > 0 and total > done else "-"
    share = f"{100 * done / total:.0f}%" if total else "100%"
    return f"{description}: {done:,}/{total:,} ({share}) {rate:,.0f}/s, ETA {eta}"


@contextmanager
def progress(description: str, total: int, stream: TextIO | None = None) -> Iterator[Advance]:
    """``advance(n)`` as ``n`` more of ``total`` records are done."""
    out = stream or sys.stderr
    if out.isatty():
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=Console(file=out), transient=False) as bar:
            task = bar.add_task(description, total=total, rate="")
            started = time.monotonic()
            done = 0

            def advance_bar(n: int) -> None:
                nonlocal done
                done += n
                rate = done / max(time.monotonic() - started, 1e-9)
                bar.update(task, advance=n, rate=f"{rate:,.0f}/s")

            yield advance_bar
        return
    started = last = time.monotonic()
    done = 0

    def advance_line(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last >= LINE_EVERY_S:
            last = now
            print(_line(description, done, total, now - started), file=out, flush=True)

    yield advance_line
    print(_line(description, done, total, time.monotonic() - started), file=out, flush=True)
