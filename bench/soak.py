#!/usr/bin/env python3
"""Soak: `streamlearn up --simulate` for a long while, each part's memory and open files.

Runs `up --simulate --duration S --json` (a broker of its own, a fresh data directory) and,
every ``--every`` seconds, reads each part's resident memory (``VmRSS`` of
``/proc/PID/status``) and open file descriptors (``/proc/PID/fd``, sockets among them):
`up` itself (it runs the simulator), the broker's JVM, and every supervised child, by its
role (a restarted part is followed under its new pid). It prints the curve (one row per
sample, MB/fds per part) and, per part, the least-squares slope after the warm-up (MB and
fds per hour), over the whole span and over each half of it: a part that leaks grows
steadily; a part filling a window grows, then bends flat once the window is full (the
second half's slope near 0); a flat one's slope is within its noise.

The agents keep windowed state: label-join a request for ``STREAMLEARN_DEDUP_WINDOW_S``
(1 h) after its horizon closed, preprocess each event id and sessionise each emitted
session for that hour. With the default window a half-hour run is all warm-up for them;
``--dedup-window`` shortens it, so the plateau shows within the run.

    .venv/bin/python bench/soak.py --duration 1800          # the issue's half hour
    .venv/bin/python bench/soak.py --duration 720 --warmup 360 --dedup-window 120

The machine runs everything: the curve includes whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROLES = (
    ("--only preprocess", "preprocess"),
    ("--only sessionise", "sessionise"),
    ("--only label-join", "label-join"),
    ("--only learner", "learner"),
    ("--only monitor", "monitor"),
    ("archive run", "archive"),
    ("collector serve", "collector"),
    ("registry serve", "registry"),
    ("streamlearn dashboard", "dashboard"),
    ("streamlearn serve", "serve"),
    ("kafka.Kafka", "kafka"),
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _role(pid: int) -> str | None:
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return next((role for marker, role in ROLES if marker in command), None)


Usage = tuple[float, int, int]
"""(resident MB, open fds, of which sockets)."""


def _sockets(pid: int, fds: list[str]) -> int:
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            continue  # closed meanwhile
    return count


def _usage(pid: int) -> Usage | None:
    """(resident MB, open fds, sockets) of ``pid``, or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb = next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")
        )
        fds = os.listdir(f"/proc/{pid}/fd")
        return rss_kb / 1024, len(fds), _sockets(pid, fds)
    except (OSError, StopIteration, ValueError):
        return None


def sample(up_pid: int) -> dict[str, Usage]:
    """Role → (MB, fds, sockets) of `up` and every process it started (the broker too)."""
    parts: dict[str, Usage] = {}
    own = _usage(up_pid)
    if own is not None:
        parts["up"] = own
    for child in _children(up_pid):
        role, usage = _role(child), _usage(child)
        if role is not None and usage is not None:
            parts[role] = usage
    return parts


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y), per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    cov = sum((t - mean_t) * (y - mean_y) for t, y in points)
    return cov / var * 3600 if var else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--every", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=300.0, help="seconds left out of slopes")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument(
        "--dedup-window", type=float, help="STREAMLEARN_DEDUP_WINDOW_S (default: the setting's)"
    )
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="soak-"))
    env = {**os.environ, "STREAMLEARN_DATA_DIR": str(data_dir)}
    if args.dedup_window is not None:
        env["STREAMLEARN_DEDUP_WINDOW_S"] = str(args.dedup_window)
    env.pop("STREAMLEARN_SCHEMA_REGISTRY_URL", None)
    env.pop("STREAMLEARN_KAFKA_BOOTSTRAP", None)
    ports = [str(_free_port()) for _ in range(5)]
    command = [
        sys.executable, "-m", "streamlearn", "up", "--simulate", "--json",
        "--duration", str(args.duration), "--rate", str(args.rate), "--port", ports[0],
        "--registry-port", ports[1], "--collector-port", ports[2], "--serve-port", ports[3],
        "--dashboard-port", ports[4],
    ]  # fmt: skip
    log = (data_dir / "up.err").open("w")
    up = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    window = env.get("STREAMLEARN_DEDUP_WINDOW_S", "the default")
    print(f"soak: up pid {up.pid}, data in {data_dir}, dedup window {window}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    started = time.monotonic()
    curve: list[tuple[float, dict[str, Usage]]] = []
    roles: list[str] = []
    while up.poll() is None:
        time.sleep(args.every)
        parts = sample(up.pid)
        if len(parts) < len(ROLES):  # still starting (or stopping)
            continue
        at = time.monotonic() - started
        if curve and at > curve[0][0] + args.duration:
            continue  # the traffic is over: parts are stopping
        curve.append((at, parts))
        roles = roles or sorted(parts)
        print(f"{at:6.0f}s load {os.getloadavg()[0]:4.1f} " + " ".join(
            f"{r} {parts[r][0]:.0f}MB/{parts[r][1]}/{parts[r][2]}" for r in roles if r in parts), flush=True)  # fmt: skip
    output, _ = up.communicate()
    summary = json.loads(output.strip().splitlines()[-1]) if output.strip() else {}
    print(f"up exited {up.returncode}; ok {summary.get('ok')}")
    steady = [(t, p) for t, p in curve if t >= args.warmup]
    print(f"\nafter the warm-up ({args.warmup:.0f}s; {len(steady)} samples; MB/fds/sockets "
          f"per sample above); slopes per hour, over the span and its two halves:")  # fmt: skip
    print(f"{'part':12} {'MB first':>9} {'MB last':>8} {'MB/h':>8} {'1st half':>8} "
          f"{'2nd half':>8} {'fds first':>9} {'fds last':>8} {'fds/h':>7} {'sockets':>9}")  # fmt: skip
    for role in roles:
        points = [(t, p[role]) for t, p in steady if role in p]
        if not points:
            continue
        mb = [(t, u[0]) for t, u in points]
        fds = [(t, float(u[1])) for t, u in points]
        middle = (mb[0][0] + mb[-1][0]) / 2
        first, second = [p for p in mb if p[0] <= middle], [p for p in mb if p[0] >= middle]
        sockets = f"{points[0][1][2]}->{points[-1][1][2]}"
        print(f"{role:12} {mb[0][1]:9.0f} {mb[-1][1]:8.0f} {slope(mb):8.1f} "
              f"{slope(first):8.1f} {slope(second):8.1f} {fds[0][1]:9.0f} {fds[-1][1]:8.0f} "
              f"{slope(fds):7.1f} {sockets:>9}")  # fmt: skip


if __name__ == "__main__":
    main()
