"""What an e2e run's failure shows of the parts that did not stop cleanly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

LOG_TAIL_CHARS = 6000


def unclean_logs(summary: dict[str, Any], data_dir: Path) -> dict[str, str]:
    """Part name → its log's end, for each part whose stop was not clean: `up` sent it
    SIGQUIT before killing it, so where it waited is in there (a CI run's failure must say
    it: the run's directory is gone once it is read)."""
    tails: dict[str, str] = {}
    for name, process in summary.get("processes", {}).items():
        if process.get("unclean"):
            log = data_dir / "logs" / f"{name}.log"
            text = log.read_text(errors="replace") if log.is_file() else "(no log)"
            tails[name] = text[-LOG_TAIL_CHARS:]
    return tails
