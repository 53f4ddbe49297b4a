"""Load generation for ``bench/predict.py``: wrk (or an aiohttp client) at fixed concurrency,
latency percentiles, and the server's CPU per request read from /proc."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LUA = """
counter = 0
local prefix = %s
local suffix = %s
request = function()
  counter = counter + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"},
                    prefix .. counter .. suffix)
end
"""


def core_split() -> tuple[set[int], set[int]] | None:
    """(the servers' cores, the load generator's core): the last core this process may run
    on for the load, the others for the servers; None with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None
    return set(cores[:-1]), {cores[-1]}


@contextmanager
def pinned(cores: set[int]) -> Iterator[None]:
    """Within the block this thread, and every process it starts (they inherit it), runs
    only on ``cores``; the thread's affinity before is restored afterwards."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def wait_http(port: int, path: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET" if path else "POST", path or "/", body=None if path else b"{}")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing ready on port {port}{path}")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds` of ``pid`` and of its children (the processes of
    ``run_workers``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds by thread name (``python`` is the event loop; ``rdk:*`` librdkafka)."""
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        group = "librdkafka" if name.startswith("rdk:") else name
        found[group] = found.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return found


def measured(
    load: Any,
    pid: int,
    url: str,
    body: dict[str, Any],
    connections: int,
    duration: int,
    cpu: Any = cpu_seconds,
) -> dict[str, float]:
    """``load``'s row plus the server's CPU µs per request (independent of other load on
    the machine, unlike req/s); ``cpu``: how to read the server's CPU seconds."""
    before, threads = cpu(pid), thread_cpu(pid)
    row: dict[str, float] = load(url, body, connections, duration)
    used = cpu(pid) - before
    requests = row["rps"] * duration
    row["cpu_us"] = used / requests * 1e6
    for name, seconds in thread_cpu(pid).items():
        share = (seconds - threads.get(name, 0.0)) / requests * 1e6
        if share >= 0.5:
            row[f"cpu_us[{name}]"] = share
    return row


def run_wrk(url: str, body: dict[str, Any], connections: int, duration: int) -> dict[str, float]:
    """Load ``url`` with ``body`` (user ids varied per request); req/s and p50/p99 in ms."""
    text = json.dumps(body)
    marker = text.index('"bench-user"')
    script = Path(tempfile.mkdtemp()) / "post.lua"
    script.write_text(
        LUA % (json.dumps(text[:marker] + '"u'), json.dumps('"' + text[marker + 12 :]))
    )
    args = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses\n{out}")
    return {"rps": rate, "p50": p50, "p99": p99}


def run_aiohttp(
    url: str, body: dict[str, Any], connections: int, duration: int
) -> dict[str, float]:
    """Fallback load generator (in a separate process): an aiohttp client."""
    code = f"""
import asyncio, json, time, aiohttp
async def main():
    body = json.loads({json.dumps(json.dumps(body))})
    latencies = []
    stop = time.monotonic() + {duration}
    async def loop(session, n):
        i = 0
        while time.monotonic() < stop:
            i += 1
            text = json.dumps(body).replace('"bench-user"', f'"u{{n}}-{{i}}"')
            began = time.perf_counter()
            async with session.post({url!r}, data=text,
                                    headers={{"Content-Type": "application/json"}}) as r:
                await r.read()
                assert r.status == 200, r.status
            latencies.append(time.perf_counter() - began)
    connector = aiohttp.TCPConnector(limit={connections})
    async with aiohttp.ClientSession(connector=connector) as session:
        began = time.monotonic()
        await asyncio.gather(*(loop(session, n) for n in range({connections})))
        took = time.monotonic() - began
    latencies.sort()
    print(json.dumps({{"rps": len(latencies) / took, "p50": latencies[len(latencies) // 2] * 1000,
                      "p99": latencies[int(len(latencies) * 0.99)] * 1000}}))
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout))
