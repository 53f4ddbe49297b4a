#!/usr/bin/env python3
"""Embedded broker start-to-ready, beside the broker's own startup time.

For each run: wall time of ``EmbeddedKafka.start()`` (what `streamlearn kafka start` waits),
and the broker's own startup, from the same call to the timestamp of its "Kafka Server
started" log line. Their ratio is the cost of our readiness detection (metadata polling)
on top of Kafka itself. The first run is cold (storage is formatted, in both columns); the
rest restart on the same data directory.

    .venv/bin/python bench/broker_startup.py --runs 5
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.settings import Settings

_STARTED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] INFO \[KafkaRaftServer .*\] Kafka Server started"
)


def _server_started_at(log_file: Path, after: float) -> float:
    for line in reversed(log_file.read_text().splitlines()):
        match = _STARTED.match(line)
        if match:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if stamp >= after - 1:
                return stamp
    raise RuntimeError(f"no 'Kafka Server started' line in {log_file}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sl-bench-")) / "kafka"
    broker = embedded_kafka(Settings(), port=free_port(), data_dir=data_dir)
    rows = []
    for run in range(args.runs):
        launched = time.time()
        began = time.monotonic()
        broker.start(timeout_s=120)
        ready = time.monotonic() - began
        own = _server_started_at(broker.config.server_log_dir / "server.log", launched) - launched
        rows.append((run, ready, own))
        broker.stop()
    print("| run | start-to-ready (ours) | broker's own startup | ratio |")
    print("|---|---|---|---|")
    for run, ready, own in rows:
        kind = "cold (format)" if run == 0 else "warm"
        print(f"| {run} {kind} | {ready:.2f} s | {own:.2f} s | {ready / own:.2f} |")
    warm = rows[1:] or rows
    print(
        f"| median warm | {statistics.median(r for _, r, _ in warm):.2f} s | "
        f"{statistics.median(o for _, _, o in warm):.2f} s | "
        f"{statistics.median(r / o for _, r, o in warm):.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
