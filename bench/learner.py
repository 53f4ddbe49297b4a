#!/usr/bin/env python3
"""Learner throughput: the learner agent through Kafka beside the same learning in-process.

Produces N ``TrainingExample`` records of ``ctr`` to ``training.examples`` on a real
broker, then, on the same examples:

- **in-process** (the limit): the learner's ``OnlineLearner`` (score, prequential and
  served metrics, learn; River) over the examples already decoded in memory;
- **learner agent**: ``streamlearn agents run --only learner`` as deployed (the Faust
  runtime: consume, decode, learn, publish signed snapshots to ``model.state`` at the
  spec's default cadence, commit). Timed by the snapshots it publishes: examples learned
  between its first and its last snapshot over the time between their ``created_ts``,
  so process start-up and the first (partial) cadence are not counted, and the snapshots
  in between are (a last snapshot of a partial cadence, published by the timer after the
  agent ran out of examples, is left out with the idle seconds before it); and by CPU
  per example: every thread of the agent, from when it is started and idle (then the
  examples are produced) to its last snapshot, the decoding process it starts included.
  Its last snapshot's payload must equal the in-process model's bytes. The span starts at
  the first snapshot after every example was produced (before, this process shared the
  machine with the agent), and beside it is the median rate of its cadences (one stall
  of the consumer weighs on the span, not on the median).

``--rounds`` repeats both (a fresh topic each time) and prints each round and the median
ratio: the machine is shared, so the in-process limit is measured again beside every
agent run. ``--without-decoding-process`` also runs the agent with
``STREAMLEARN_AGENT_DECODING_PROCESS=false`` in every round (an A/B). ``--profile FILE`` samples the agent with py-spy (speedscope format).

    .venv/bin/python bench/learner.py --examples 50000 --rounds 3

Goal (issue 19): the agent at least 0.8 of in-process. Uses the broker at
STREAMLEARN_KAFKA_BOOTSTRAP, or starts the embedded one.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from streamlearn.kafka_clients import PRODUCE_TIMEOUT_S
from streamlearn.kafka_local import free_port
from streamlearn.models.configured import configured_spec
from streamlearn.models.online import OnlineLearner
from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parents[1]
KEY = "bench-signing-key"
AGENT_TIMEOUT_S = 600.0


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    # murmur2, as every producer of streamlearn: the partition the learner reads ctr from.
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"}
    )
    for value in values:
        while True:
            try:
                producer.produce(topic, key=b"ctr", value=value)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(PRODUCE_TIMEOUT_S) == 0


def in_process(settings: Settings, decoded: list[dict[str, Any]], topic: str) -> OnlineLearner:
    learner = OnlineLearner(configured_spec("ctr", settings), signing_key=KEY)
    for offset, example in enumerate(decoded):
        learner.learn(example, topic, 0, offset)
    return learner


class SnapshotWatch:
    """The ``ctr`` snapshots published to ``model.state``, read as they come (one
    consumer)."""

    def __init__(self, bootstrap: str, topic: str, serde: AvroSerde) -> None:
        self.serde = serde
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "enable.auto.commit": False,
                                  "group.id": f"bench-{uuid.uuid4().hex}"})  # fmt: skip
        partitions = self.consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> None:
        for message in self.consumer.consume(100, timeout=0.05):
            if message.error() is None and message.key() == b"ctr" and message.value():
                self.seen.append(self.serde.decode(message.value()))

    def close(self) -> None:
        self.consumer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its running children (the learner's
    decoding process), every thread (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children.update(int(child) for child in (task / "children").read_text().split())
    return own + sum(cpu_seconds(child) for child in children)


def settled(pid: int, quiet_s: float = 3.0) -> float:
    """Wait until process ``pid`` has used under 2 % of a CPU for ``quiet_s`` (started,
    joined its group, idle); its CPU seconds then."""
    before = cpu_seconds(pid)
    while True:
        time.sleep(quiet_s)
        now = cpu_seconds(pid)
        if now - before < 0.02 * quiet_s:
            return now
        before = now


def run_agent(
    bootstrap: str,
    env: dict[str, str],
    prefix: str,
    feed: Callable[[], None],
    total: int,
    profile: Path | None,
) -> tuple[list[dict[str, Any]], float, datetime, Path]:
    """``agents run --only learner``, started and idle before ``feed()`` produces the
    ``total`` examples, until it has published a snapshot of all of them: its snapshots
    and the CPU seconds it used from ``feed()`` on (every thread)."""
    log_path = Path(tempfile.mkdtemp()) / "learner.log"
    registry = RegistryClient(env["STREAMLEARN_SCHEMA_REGISTRY_URL"])
    state_topic = prefix + "model.state"
    watch = SnapshotWatch(bootstrap, state_topic, AvroSerde.for_topic(
        registry, state_topic, "ModelSnapshot"))  # fmt: skip
    spy = None
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "agents", "run", "--only", "learner",
             "--group", "bench-learner"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "speedscope",
                 "-o", str(profile), "-p", str(worker.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        idle_cpu = settled(worker.pid)
        feed()
        fed = datetime.now(UTC)
        deadline = time.monotonic() + AGENT_TIMEOUT_S
        while not watch.seen or watch.seen[-1]["trained_examples"] < total:
            if worker.poll() is not None:
                raise SystemExit(f"the learner exited with {worker.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the learner did not finish in time; see {log_path}")
            watch.poll()
        return watch.seen, cpu_seconds(worker.pid) - idle_cpu, fed, log_path
    finally:
        watch.close()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        worker.terminate()
        worker.wait(60)


def run_round(
    args: argparse.Namespace,
    bootstrap: str,
    registry_url: str,
    examples: list[dict[str, Any]],
    decoding_process: bool,
) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix,
                        schema_registry_url=registry_url, model_signing_key=SecretStr(KEY))  # fmt: skip
    env = {**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
           "STREAMLEARN_TOPIC_PREFIX": prefix, "STREAMLEARN_SCHEMA_REGISTRY_URL": registry_url,
           "STREAMLEARN_MODEL_SIGNING_KEY": KEY, "STREAMLEARN_MODELS": '["ctr"]',
           "STREAMLEARN_AGENT_DECODING_PROCESS": str(decoding_process).lower()}  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    apply_topology(admin, desired_topics(load_topology(REPO / "topology" / "topics.yaml"), prefix))
    registry = RegistryClient(registry_url)
    topic = prefix + "training.examples"
    serde = AvroSerde.for_topic(registry, topic, "TrainingExample")
    encoded = [serde.encode(e) for e in examples]
    # Decoded once, in memory: the in-process learner reads no timestamp, so either form does.
    decoded = [serde.decode(v) for v in encoded]

    began, began_cpu = time.perf_counter(), time.process_time()
    limit = in_process(settings, decoded, topic)
    in_process_rate = len(decoded) / (time.perf_counter() - began)
    in_process_cpu = (time.process_time() - began_cpu) / len(decoded)

    published, agent_cpu, fed, log_path = run_agent(
        bootstrap, env, prefix, lambda: produce(bootstrap, topic, encoded), len(examples),
        args.profile,
    )  # fmt: skip
    last = published[-1]
    # From the first snapshot after every example was produced: while this process
    # produces, the agent shares the machine with it.
    first = next((p for p in published[:-2] if p["created_ts"] >= fed), published[0])
    # A last snapshot of less than a cadence's examples waited for the timer
    # (snapshot_every_s) after the agent had learned everything: that idle time is not the
    # agent's. Measure to the snapshot before it, when it is not the first.
    every = configured_spec("ctr", settings).snapshot_every_examples
    end = last
    if len(published) >= 3 and last["trained_examples"] - published[-2]["trained_examples"] < every:
        end = published[-2]
    # Each cadence's own rate too: a single stall (the consumer waiting ~0.6 s for a fetch,
    # seen once in most runs whatever the agent does) weighs on the span, not the median.
    measured = published[published.index(first) : published.index(end) + 1]
    windows = [
        (b["trained_examples"] - a["trained_examples"])
        / (b["created_ts"] - a["created_ts"]).total_seconds()
        for a, b in pairwise(measured)
    ]
    learned = end["trained_examples"] - first["trained_examples"]
    span = (end["created_ts"] - first["created_ts"]).total_seconds()
    if last["payload"] != limit.snapshot(last["created_ts"])["payload"]:
        raise SystemExit(f"the agent's model differs from the in-process one; see {log_path}")
    return {
        "in_process": in_process_rate,
        "agent": learned / span,
        "in_process_cpu_us": in_process_cpu * 1e6,
        "agent_cpu_us": agent_cpu / len(examples) * 1e6,
        "snapshots": float(len(published)),
        "cadence": " ".join(str(p["trained_examples"]) for p in published),
        "measured_examples": float(learned),
        "measured_from": first["trained_examples"],
        "median_window": statistics.median(windows),
        "load": os.getloadavg()[0],
        "decoding_process": decoding_process,
    }


def refuse_sizes_it_cannot_time(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Before the broker starts: the agent is timed from its first snapshot to its last
    one taken at the cadence (a last one of fewer examples waited for the timer). With
    one cadence of examples or less a whole round ran, then divided by zero (one
    snapshot); with under three, the span was the timer's wait (0.06x at 20,000). No
    round at all failed on the median of nothing."""
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, not {args.rounds}")
    every = configured_spec("ctr", Settings()).snapshot_every_examples
    if args.examples < 3 * every:
        parser.error(
            f"--examples {args.examples}: at least {3 * every} (the agent is timed between "
            f"its snapshots, one every {every} examples: STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", type=Path, help="py-spy speedscope profile of the agent")
    parser.add_argument(
        "--without-decoding-process",
        action="store_true",
        help="in each round, also run the agent decoding in its own process (the A/B of "
        "STREAMLEARN_AGENT_DECODING_PROCESS)",
    )
    args = parser.parse_args(argv)
    refuse_sizes_it_cannot_time(parser, args)
    variants = [True, False] if args.without_decoding_process else [True]

    bootstrap, broker = bench_broker()
    registry_port = free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    registry_process = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(registry_port)],
        env={**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    examples = ClickWorld(seed=21).training_examples(args.examples)
    results = []
    try:
        time.sleep(3)
        print(
            "| round | decoding process | in-process examples/s | learner agent examples/s "
            "| ratio | median cadence ratio | CPU per example: in-process / agent | CPU ratio "
            "| snapshots | load (1 min) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")  # fmt: skip
        for number in range(1, args.rounds + 1):
            for decoding_process in variants:
                r = run_round(args, bootstrap, registry_url, examples, decoding_process)
                results.append(r)
                print(f"| {number} | {'yes' if decoding_process else 'no'} "
                      f"| {r['in_process']:,.0f} | {r['agent']:,.0f} "
                      f"| {r['agent'] / r['in_process']:.2f} "
                      f"| {r['median_window'] / r['in_process']:.2f} "
                      f"| {r['in_process_cpu_us']:.1f} µs / "
                      f"{r['agent_cpu_us']:.1f} µs "
                      f"| {r['in_process_cpu_us'] / r['agent_cpu_us']:.2f} "
                      f"| {r['snapshots']:.0f} ({r['cadence']}; from {r['measured_from']}) "
                      f"| {r['load']:.1f} |", flush=True)  # fmt: skip
    finally:
        registry_process.terminate()
        registry_process.wait(30)
        if broker is not None:
            broker.stop()
    for decoding_process in variants:
        runs = [r for r in results if r["decoding_process"] == decoding_process]
        ratio = statistics.median(r["agent"] / r["in_process"] for r in runs)
        cpu = statistics.median(r["in_process_cpu_us"] / r["agent_cpu_us"] for r in runs)
        window = statistics.median(r["median_window"] / r["in_process"] for r in runs)
        print(f"\nlearner agent ({'with' if decoding_process else 'without'} its decoding "
              f"process) {ratio:.2f}x in-process by examples/s ({window:.2f}x by the median "
              f"cadence), {cpu:.2f}x by CPU per "
              f"example (median of {len(runs)} rounds; "
              f"{args.examples:,} examples, measured between snapshots: "
              f"{runs[-1]['measured_examples']:,.0f}); {os.cpu_count()} CPUs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
