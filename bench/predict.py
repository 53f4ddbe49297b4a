#!/usr/bin/env python3
"""Prediction worker under load, beside a bare aiohttp handler and an in-process model call;
and freshness (snapshot produced → first response carrying its version).

Everything runs for real: a broker (STREAMLEARN_KAFKA_BOOTSTRAP, or the embedded one), a
schema registry process, the topology under a fresh prefix, a trained ``ctr`` snapshot (and
a per-arm ``ctr@b`` one) on ``model.state``, an experiment splitting users between them,
and ``streamlearn serve`` as its own process, so telemetry, routing and rules are all on.
The load comes from another process at fixed concurrency: ``wrk`` when it is on PATH (a Lua
script varies the user id per request), otherwise an aiohttp client (slower: it is then
the client that limits the rates, which the output says). With two cores or more the
servers run on all but the last core and the load generator, the broker and this process
on the last (``--no-pin``: everything everywhere).

Rows: the worker with one instance per request, the worker with ``--batch`` instances per
request, a bare aiohttp handler returning a constant (same machine, same client), and the
same model called in-process (``spec.predict(model, model_input(...))``, no HTTP).
Printed: requests/s, p50/p99 latency and the ratios; telemetry delivered/dropped by the
worker; then freshness p50/p99 over ``--snapshots`` snapshots.

    .venv/bin/python bench/predict.py --connections 32 --duration 10 --batch 32
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

# Siblings in bench/ (on sys.path when this file is run as a script).
from predict_baselines import bare_server, minimal_server
from predict_load import (
    core_split,
    group_cpu_seconds,
    measured,
    pinned,
    run_aiohttp,
    run_wrk,
    wait_http,
)

from streamlearn.kafka_local import free_port
from streamlearn.models import SPECS, build_snapshot, model_input, safe_pickle
from streamlearn.models.checks import training_stream
from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving.experiment_topic import publish_experiment
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-signing-key"
EXPERIMENT = Experiment(name="bench", salt="b", arms=(Arm("a", "ctr", 0.5), Arm("b", "ctr@b", 0.5)))


def in_process(model: Any, requests: list[Any], seconds: float = 3.0) -> dict[str, float]:
    """The same model called in this process: wall-clock latencies per call, and CPU time
    per call (``cpu_us``, this thread's, over a second pass without the per-call clocks):
    the figure to set beside the servers' CPU per request, which a busy machine inflates
    less than wall-clock time."""
    spec = SPECS["ctr"]
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < stop:
        request = requests[i % len(requests)]
        began = time.perf_counter()
        spec.predict(model, model_input(request.features, request.context))
        latencies.append(time.perf_counter() - began)
        i += 1
    began_cpu = time.thread_time()
    for j in range(i):
        request = requests[j % len(requests)]
        spec.predict(model, model_input(request.features, request.context))
    cpu_us = (time.thread_time() - began_cpu) / i * 1e6
    latencies.sort()
    return {
        "rps": len(latencies) / sum(latencies),
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "cpu_us": cpu_us,
    }


def load_generator(setup_ok: bool) -> str:
    """What the run loads the servers with, as printed (wrk's own version line)."""
    if shutil.which("wrk") is None:
        why = "" if setup_ok else "; scripts/bootstrap_bench failed"
        return f"aiohttp client (slow: the client limits the rates{why})"
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    version = (out.stdout or out.stderr).split("Copyright")[0].strip()
    return version or "wrk"


def profiled(load: Any, pid: int, output: str | None) -> Any:
    """``load`` with py-spy recording ``pid`` meanwhile (when ``output`` is given)."""
    if not output:
        return load

    def run(url: str, body: dict[str, Any], connections: int, duration: int) -> Any:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid),
             "--format", "raw", "--nonblocking", "--rate", "250", "--output", output,
             "--duration", str(duration)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            return load(url, body, connections, duration)
        finally:
            spy.wait(duration + 30)

    return run


def goal_rounds(
    rounds: int,
    load: Any,
    minimal: tuple[int, str],
    worker: tuple[int, int, str],
    bodies: tuple[dict[str, Any], dict[str, Any]],
    model: Any,
    requests: list[Any],
    connections: int,
    duration: int,
) -> tuple[list[float], list[float]]:
    """``rounds`` more runs of the goals' rows (the minimal handler, the worker with one
    instance, the worker with a batch of ``len(bodies[1]["instances"])``, the in-process
    call), which goes first alternating: the worker / minimal handler ratio by server CPU
    per request, and the batch's CPU per prediction / the in-process call's, of each."""
    (minimal_pid, minimal_url), (pid, port, url) = minimal, worker
    one, batch = bodies
    size = len(batch["instances"])
    singles: list[float] = []
    batches: list[float] = []
    for index in range(rounds):
        got: dict[str, dict[str, float]] = {}
        for who in ("minimal", "worker") if index % 2 == 0 else ("worker", "minimal"):
            if who == "minimal":
                got[who] = measured(load, minimal_pid, minimal_url, one, connections, duration)
            else:
                got[who] = measured(counted(load, port), pid, url, one, connections, duration)
        least, single = got["minimal"], got["worker"]
        batched = measured(counted(load, port), pid, url, batch, connections, duration)
        call_us = in_process(model, requests)["cpu_us"]
        singles.append(least["cpu_us"] / single["cpu_us"])
        batches.append(batched["cpu_us"] / size / call_us)
        print(
            f"  goal round {index + 1}: minimal handler {least['cpu_us']:.1f}, worker "
            f"{single['cpu_us']:.1f} us/req ({singles[-1]:.2f}x); batch "
            f"{batched['cpu_us'] / size:.1f} us per prediction, in-process call "
            f"{call_us:.1f} us ({batches[-1]:.2f}x)",
            flush=True,
        )
    return singles, batches


def ab_rounds(
    rounds: int,
    load: Any,
    worker: tuple[int, int],
    baseline: tuple[int, int],
    bodies: dict[str, dict[str, Any]],
    connections: int,
    duration: int,
) -> None:
    """Alternate the worker and the baseline worker ``rounds`` times per body (which goes
    first alternates too); print each run's server CPU per request and the medians."""
    cpu: dict[tuple[str, str], list[float]] = {}
    for index in range(rounds):
        for label, body in bodies.items():
            pair = [("worker", worker), ("baseline", baseline)]
            for who, (pid, port) in pair if index % 2 == 0 else pair[::-1]:
                url = f"http://127.0.0.1:{port}/v1/models/ctr:predict"
                row = measured(counted(load, port), pid, url, body, connections, duration)
                cpu.setdefault((who, label), []).append(row["cpu_us"])
                print(
                    f"  round {index + 1} {who:8} {label:13} {row['rps']:8.0f} req/s "
                    f"{row['cpu_us']:8.1f} us/req, p99 {row['p99']:.2f} ms, telemetry "
                    f"dropped {row['telemetry_dropped']:.0f}",
                    flush=True,
                )
    for label in bodies:
        new, old = (statistics.median(cpu[who, label]) for who in ("worker", "baseline"))
        print(
            f"A/B {label}: median server CPU per request worker {new:.1f} us, baseline "
            f"{old:.1f} us: {old / new:.2f}x"
        )


def counted(load: Any, port: int) -> Any:
    """``load``, its row with the telemetry records the worker delivered and dropped during
    it: a dropped record is CPU the worker did not spend, so a row with drops is cheaper
    than the work asked of it (the broker shares the machine)."""

    def run(url: str, body: dict[str, Any], connections: int, duration: int) -> Any:
        before = telemetry_counts(port)
        row = load(url, body, connections, duration)
        after = telemetry_counts(port)
        row["telemetry_delivered"] = after[0] - before[0]
        row["telemetry_dropped"] = after[1] - before[1]
        return row

    return run


def telemetry_counts(port: int) -> tuple[float, float]:
    sent = metric_sum(port, "streamlearn_serve_telemetry_delivered_total")
    dropped = metric_sum(port, "streamlearn_serve_telemetry_dropped_total")
    return sum(sent.values()), sum(dropped.values())


def metric_sum(port: int, name: str) -> dict[str, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            found[key[len(name) :] or "total"] = float(value)
    return found


def freshness(
    port: int, settings: Settings, registry: RegistryClient, payload: bytes, count: int
) -> list[float]:
    """Seconds from producing snapshot v to the first response carrying v."""
    topic = settings.topic_prefix + "model.state"
    serde = AvroSerde.for_topic(registry, topic, "ModelSnapshot")
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 0})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    # A user the experiment routes to arm "a", i.e. to model ctr (the one re-published).
    user = next(u for u in (f"fresh-{i}" for i in range(100)) if EXPERIMENT.assign(u).name == "a")
    body = json.dumps({"user_id": user, "features": {"price": 10.0}}).encode()
    took: list[float] = []
    for version in range(100, 100 + count):
        record = build_snapshot(
            SPECS["ctr"], None, version=version, parent_version=version - 1,
            trained_examples=version, offsets={}, metrics={}, created=datetime.now(UTC),
            key=KEY, payload=payload,
        )  # fmt: skip
        value = serde.encode(record)
        began = time.perf_counter()
        producer.produce(topic, key=b"ctr", value=value)
        producer.flush(10)
        while True:
            connection.request(
                "POST",
                "/v1/models/ctr:predict",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            answer = json.loads(connection.getresponse().read())
            if answer["predictions"][0]["model_version"] == version:
                took.append(time.perf_counter() - began)
                break
            if time.perf_counter() - began > 10:
                raise SystemExit(f"v{version} not served after 10 s")
            time.sleep(0.002)
    producer.close()
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--batch", type=int, default=32, help="instances per batched request")
    parser.add_argument("--snapshots", type=int, default=50)
    parser.add_argument(
        "--low-connections",
        default="4,8",
        help="also load the bare handler and the worker (1 instance) at these concurrencies "
        "(comma-separated; empty for none): p99 at low load",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="record with py-spy (installed by scripts/bootstrap_bench) the worker during the "
        "1-instance and batch runs (FILE.1.txt, FILE.batch.txt) and the minimal handler during "
        "its run (FILE.minimal.txt), as collapsed stacks",
    )
    parser.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="also load, side by side in the same run, a worker run from another version's "
        "src directory (e.g. `git archive <commit> src | tar -x -C /tmp/old`, then "
        "/tmp/old/src): rows 'baseline worker, ...'",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=0,
        help="with --baseline-src: that many more rounds alternating the two workers "
        "(1 instance and --batch), then the median server CPU per request of each (on a "
        "shared machine one pair of runs moves by ±15 %%)",
    )
    parser.add_argument(
        "--goal-rounds",
        type=int,
        default=0,
        help="that many more runs of the goals' rows (minimal handler, worker with 1 and "
        "--batch instances, in-process call), then the goals' ratios as the median of every "
        "run (one run on a shared machine moves by ±5 %%)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also load N worker processes sharing one port (serving.runner.run_workers, "
        "SO_REUSEPORT) with 1 instance per request: req/s, per core, and their summed CPU "
        "per request (0: not run)",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="let every process run on every core (by default, with two cores or more, the "
        "servers run on all but the last core and the load generator, the broker and this "
        "process on the last)",
    )
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare-uvloop", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--minimal-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server, args.bare_uvloop)
        return 0
    if args.minimal_server:
        minimal_server(args.minimal_server)
        return 0
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    # The bench's own setup installs the pinned wrk (and py-spy); without root it prints the
    # one-line fix and the run falls back to the aiohttp client, saying so.
    setup = subprocess.run([str(REPO / "scripts" / "bootstrap_bench")], check=False)
    load = run_wrk if shutil.which("wrk") else run_aiohttp
    print(f"load generator: {load_generator(setup.returncode == 0)}")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; cores: {os.cpu_count()}")
    placement = None if args.no_pin else core_split()
    server_cores = placement[0] if placement else set(os.sched_getaffinity(0))
    if placement:
        # The load generator on a core of its own, so that the servers' figures are not
        # shared with it: this thread, and what it starts from here on (the broker, the
        # registry, wrk), runs on the last core; the servers are started on the others.
        os.sched_setaffinity(0, placement[1])
        print(f"cores: servers on {sorted(placement[0])}; load generator, broker and this "
              f"process on {sorted(placement[1])}")  # fmt: skip
    else:
        print("cores: not pinned (one core, or --no-pin): the load generator shares them")

    def on_server_cores() -> contextlib.AbstractContextManager[None]:
        return pinned(server_cores) if placement else contextlib.nullcontext()

    bootstrap, broker = bench_broker()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    registry_port, worker_port, bare_port = free_port(), free_port(), free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    env = {
        **os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap, "STREAMLEARN_TOPIC_PREFIX": prefix,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": registry_url, "STREAMLEARN_MODEL_SIGNING_KEY": KEY,
        "STREAMLEARN_SERVE_MAX_INSTANCES": str(max(args.batch, 256)),
        "STREAMLEARN_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix, schema_registry_url=registry_url
    )
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlearn",
                "registry",
                "serve",
                "--port",
                str(registry_port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        apply_topology(
            AdminClient({"bootstrap.servers": bootstrap}),
            desired_topics(load_topology(REPO / "topology" / "topics.yaml"), prefix),
        )
        wait_http(registry_port, "/subjects")
        registry = RegistryClient(registry_url)
        spec = SPECS["ctr"]
        model = spec.new_model()
        for x, label in training_stream(spec, 5000):
            spec.learn(model, x, label)
        payload = safe_pickle.dumps(model)
        serde = AvroSerde.for_topic(registry, prefix + "model.state", "ModelSnapshot")
        producer = Producer({"bootstrap.servers": bootstrap})
        for name in ("ctr", "ctr@b"):
            record = build_snapshot(
                spec, None, version=1, parent_version=None, trained_examples=5000, offsets={},
                metrics={"auc": 0.7}, created=datetime.now(UTC), key=KEY, model_name=name,
                payload=payload,
            )  # fmt: skip
            producer.produce(prefix + "model.state", key=name.encode(), value=serde.encode(record))
        producer.flush(10)
        # Closed now: a client left open kept trying the broker once the bench stopped it
        # (librdkafka's "Connection refused" lines after the last figures).
        producer.close()
        publish_experiment(
            settings, registry,
            EXPERIMENT,
        )  # fmt: skip
        with on_server_cores():
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "streamlearn", "serve", "--port", str(worker_port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=sys.stderr,
                )
            )
            bare_process = subprocess.Popen(
                [sys.executable, __file__, "--bare-server", str(bare_port)]
            )
            processes.append(bare_process)
            uv_port = free_port()
            if has_uvloop:
                uv_process = subprocess.Popen(
                    [sys.executable, __file__, "--bare-server", str(uv_port), "--bare-uvloop"]
                )
                processes.append(uv_process)
                wait_http(uv_port, "")
            minimal_port = free_port()
            minimal_process = subprocess.Popen(
                [sys.executable, __file__, "--minimal-server", str(minimal_port)]
            )
            processes.append(minimal_process)
            wait_http(minimal_port, "/healthz")
            worker_pid = processes[1].pid
            wait_http(worker_port, "/readyz")
            baseline_port = free_port()
            if args.baseline_src:
                baseline_env = {**env, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
                baseline_process = subprocess.Popen(
                    [sys.executable, "-m", "streamlearn", "serve", "--port", str(baseline_port)],
                    env=baseline_env, stdout=subprocess.DEVNULL, stderr=sys.stderr,
                )  # fmt: skip
                processes.append(baseline_process)
                wait_http(baseline_port, "/readyz")
            multi_port = free_port()
            if args.workers:
                multi_process = subprocess.Popen(
                    [sys.executable, "-m", "streamlearn", "serve", "--workers", str(args.workers),
                     "--port", str(multi_port)],
                    env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr,
                )  # fmt: skip
                processes.append(multi_process)
                for _ in range(4 * args.workers):  # new connections: each worker answers some
                    wait_http(multi_port, "/readyz")
        wait_http(bare_port, "")

        requests = ClickWorld(7).requests(1000)
        one = {"user_id": "bench-user", "features": requests[0].features,
               "context": requests[0].context}  # fmt: skip
        batch = {
            "instances": [
                {"user_id": "bench-user" if i == 0 else f"b{i}", "features": r.features,
                 "context": r.context}
                for i, r in enumerate(requests[: args.batch])
            ]
        }  # fmt: skip
        worker_url = f"http://127.0.0.1:{worker_port}/v1/models/ctr:predict"
        bare_url = f"http://127.0.0.1:{bare_port}/v1/models/ctr:predict"
        uv_url = f"http://127.0.0.1:{uv_port}/v1/models/ctr:predict"
        # The worker's request, byte for byte: at a one-letter path (before 2026-12-05) the
        # minimal handler took ~2 µs less (the router and the URL), which the worker paid.
        minimal_url = f"http://127.0.0.1:{minimal_port}/v1/models/ctr:predict"
        load(worker_url, one, args.connections, 2)  # warm-up
        load(bare_url, one, args.connections, 2)
        d, c = args.duration, args.connections
        rows = {
            "bare aiohttp handler": measured(load, bare_process.pid, bare_url, one, c, d),
            **(
                {"bare handler, uvloop": measured(load, uv_process.pid, uv_url, one, c, d)}
                if has_uvloop
                else {}
            ),
            "minimal handler: orjson + model": measured(
                profiled(load, minimal_process.pid, args.profile and f"{args.profile}.minimal.txt"),
                minimal_process.pid,
                minimal_url,
                one,
                c,
                d,
            ),
            "worker, 1 instance": measured(
                counted(
                    profiled(load, worker_pid, args.profile and f"{args.profile}.1.txt"),
                    worker_port,
                ),
                worker_pid,
                worker_url,
                one,
                c,
                d,
            ),
            f"worker, {args.batch} instances": measured(
                counted(
                    profiled(load, worker_pid, args.profile and f"{args.profile}.batch.txt"),
                    worker_port,
                ),
                worker_pid,
                worker_url,
                batch,
                c,
                d,
            ),
            "in-process model call": in_process(model, requests),
        }
        if args.workers:
            url = f"http://127.0.0.1:{multi_port}/v1/models/ctr:predict"
            name = f"{args.workers} workers (SO_REUSEPORT), 1 inst."
            rows[name] = measured(
                counted(load, multi_port), multi_process.pid, url, one, c, d, group_cpu_seconds
            )
        if args.baseline_src:
            url = f"http://127.0.0.1:{baseline_port}/v1/models/ctr:predict"
            pid = baseline_process.pid
            rows["baseline worker, 1 instance"] = measured(
                counted(load, baseline_port), pid, url, one, c, d
            )
            rows[f"baseline worker, {args.batch} instances"] = measured(
                counted(load, baseline_port), pid, url, batch, c, d
            )
            # And the new worker again after it: each pair brackets the other in time.
            rows["worker, 1 instance (again)"] = measured(
                counted(load, worker_port), worker_pid, worker_url, one, c, d
            )
            if args.rounds:
                ab_rounds(args.rounds, load, (worker_pid, worker_port), (pid, baseline_port),
                          {"1 instance": one, f"{args.batch} instances": batch}, c, d)  # fmt: skip
        print(f"\n{args.connections} connections, {args.duration} s per run\n")
        print(
            f"{'':32} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'predictions/s':>14} "
            f"{'server CPU us/req':>18}"
        )
        for name, row in rows.items():
            per = args.batch if "instances" in name and not name.endswith("1 instance") else 1
            cpu = row.get("cpu_us", 1e6 / row["rps"])
            print(
                f"{name:32} {row['rps']:>10.0f} {row['p50']:>8.3f} {row['p99']:>8.3f} "
                f"{row['rps'] * per:>14.0f} {cpu:>18.1f}"
            )
        for name, row in rows.items():
            if "telemetry_dropped" in row:
                print(
                    f"  {name}: telemetry records delivered {row['telemetry_delivered']:.0f}, "
                    f"dropped {row['telemetry_dropped']:.0f} during its run"
                )
        for name, row in rows.items():
            split = {k[7:-1]: v for k, v in row.items() if k.startswith("cpu_us[")}
            if len(split) > 1:
                parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(split.items()))
                print(f"  {name}: server CPU us/req by thread: {parts}")
        bare, single = rows["bare aiohttp handler"], rows["worker, 1 instance"]
        batched = rows[f"worker, {args.batch} instances"]
        print(
            f"\nworker / bare handler (req/s): {single['rps'] / bare['rps']:.2f}x "
            "(round one's goal >= 0.8)"
        )
        print(
            "worker / bare handler (by server CPU per request): "
            f"{bare['cpu_us'] / single['cpu_us']:.2f}x"
        )
        print(f"worker p99: {single['p99']:.2f} ms (round one's goal <= 2)")
        print(
            "batched predictions/s / in-process calls/s: "
            f"{batched['rps'] * args.batch / rows['in-process model call']['rps']:.2f}x"
        )
        minimal = rows["minimal handler: orjson + model"]
        print(
            f"minimal handler / bare handler (req/s): {minimal['rps'] / bare['rps']:.2f}x; "
            f"worker / minimal handler: {single['rps'] / minimal['rps']:.2f}x"
        )
        print(
            "worker / minimal handler (by server CPU per request): "
            f"{minimal['cpu_us'] / single['cpu_us']:.2f}x (goal >= 0.85); p99 "
            f"{single['p99'] / minimal['p99']:.2f}x the minimal handler's (goal <= 1.5)"
        )
        call_us = rows["in-process model call"]["cpu_us"]
        print(
            f"batched: server CPU per prediction {batched['cpu_us'] / args.batch:.1f} us, "
            f"{batched['cpu_us'] / args.batch / call_us:.2f}x the in-process model call "
            f"({call_us:.1f} us of CPU per call; goal <= 2)"
        )
        if args.goal_rounds:
            print(f"\n{args.goal_rounds} more runs of the goals' rows:")
            singles, batches = goal_rounds(
                args.goal_rounds, load, (minimal_process.pid, minimal_url),
                (worker_pid, worker_port, worker_url), (one, batch), model, requests, c, d,
            )  # fmt: skip
            singles.insert(0, minimal["cpu_us"] / single["cpu_us"])
            batches.insert(0, batched["cpu_us"] / args.batch / call_us)
            runs = len(singles)
            print(
                f"median of {runs} runs: worker / minimal handler (by server CPU per request) "
                f"{statistics.median(singles):.2f}x (goal >= 0.85; "
                f"{', '.join(f'{r:.2f}' for r in singles)}); batched CPU per prediction "
                f"{statistics.median(batches):.2f}x the in-process model call (goal <= 2; "
                f"{', '.join(f'{r:.2f}' for r in batches)})"
            )
        if has_uvloop:
            uv = rows["bare handler, uvloop"]
            print(f"worker / bare handler on uvloop (req/s): {single['rps'] / uv['rps']:.2f}x")
        if args.workers:
            multi = rows[f"{args.workers} workers (SO_REUSEPORT), 1 inst."]
            used = min(args.workers, len(server_cores))
            where = (
                f"on {len(server_cores)} server core(s), wrk on its own"
                if placement
                else f"wrk shares the {len(server_cores)} cores"
            )
            print(
                f"{args.workers} workers: {multi['rps']:.0f} req/s, "
                f"{multi['rps'] / used:.0f} req/s per core used by workers ({where}), "
                f"{multi['cpu_us']:.1f} us of CPU per request summed over the workers "
                f"(1 worker: {single['cpu_us']:.1f} us)"
            )
        low = [int(n) for n in args.low_connections.split(",") if n.strip()]
        if low:
            print(f"\nlower concurrency, {d} s per run:")
            print(f"{'connections':>11} {'target':24} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for n in low:
            targets = [("bare aiohttp handler", bare_url), ("worker, 1 instance", worker_url)]
            if has_uvloop:
                targets.insert(1, ("bare handler, uvloop", uv_url))
            for name, url in targets:
                row = load(url, one, n, d)
                print(
                    f"{n:>11} {name:24} {row['rps']:>10.0f} {row['p50']:>8.3f} {row['p99']:>8.3f}"
                )
        sent = metric_sum(worker_port, "streamlearn_serve_telemetry_delivered_total")
        dropped = metric_sum(worker_port, "streamlearn_serve_telemetry_dropped_total")
        print(f"telemetry delivered: {sent}, dropped: {dropped or 0}")

        took = sorted(freshness(worker_port, settings, registry, payload, args.snapshots))
        p50 = statistics.median(took) * 1000
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))] * 1000
        print(f"\nfreshness over {len(took)} snapshots: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
              f"(max {took[-1] * 1000:.0f} ms; goal p99 <= 1000)")  # fmt: skip
        registry.close()
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(30)
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
