#!/usr/bin/env python3
"""Replay throughput: rebuilding a model from Kafka beside learning in-process.

Produces N ``TrainingExample`` records of ``ctr`` to ``training.examples`` on a real
broker, then, on the same examples:

- **in-process** (the limit): the learner's ``OnlineLearner`` (score, then learn, River)
  over the examples already decoded in memory;
- **replay model**: ``streamlearn replay model``'s code path (read the range from Kafka,
  decode Avro, learn, build the signed snapshot);
- **replay verify**: recomputing that snapshot from its recorded offsets and comparing
  its bytes (per version).

Prints examples/s and the ratio to in-process. Goal (issue 13): replay at least 0.8 of it.

    .venv/bin/python bench/replay.py --examples 50000

Uses the broker at STREAMLEARN_KAFKA_BOOTSTRAP, or starts the embedded one.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from streamlearn.kafka_clients import PRODUCE_TIMEOUT_S
from streamlearn.kafka_local import free_port
from streamlearn.models.configured import configured_spec
from streamlearn.models.online import OnlineLearner
from streamlearn.models.specs import ModelSpec
from streamlearn.models.synthetic import ClickWorld
from streamlearn.replay.model import plan_model_replay, run_model_replay
from streamlearn.replay.verify import verify_published
from streamlearn.runtime.topic_reader import read_ranges
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parents[1]


def learn_in_process(
    spec: ModelSpec, decoded: list[dict[str, Any]], topic: str
) -> tuple[OnlineLearner, float, float]:
    """The limit: (learner, examples/s, CPU µs per example)."""
    learner = OnlineLearner(spec, signing_key="bench-signing-key")
    began, cpu = time.perf_counter(), time.process_time()
    for offset, example in enumerate(decoded):
        learner.learn(example, topic, 0, offset)
    cpu_us = (time.process_time() - cpu) / len(decoded) * 1e6
    return learner, len(decoded) / (time.perf_counter() - began), cpu_us


def _cpu() -> tuple[float, float]:
    """CPU seconds of this process, and of its children waited for (the replay's reader,
    forked and waited for within run_model_replay)."""
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime, children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=1,
                        help="in-process and replay model again, alternating (median ratio)")  # fmt: skip
    args = parser.parse_args(argv)
    # Before the broker starts: no examples divided by zero after it had, and no round ran
    # one anyway ("median of 1 rounds").
    if args.examples < 1:
        parser.error(f"--examples must be >= 1, not {args.examples}")
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, not {args.rounds}")

    bootstrap, broker = bench_broker()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    registry_port = free_port()
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix,
        schema_registry_url=f"http://127.0.0.1:{registry_port}",
        model_signing_key=SecretStr("bench-signing-key"),
    )  # fmt: skip
    env = {**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
           "STREAMLEARN_TOPIC_PREFIX": prefix}  # fmt: skip
    registry_process = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(registry_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        apply_topology(
            admin, desired_topics(load_topology(REPO / "topology" / "topics.yaml"), prefix)
        )
        time.sleep(3)
        registry = RegistryClient(settings.schema_registry_url)
        topic = prefix + "training.examples"
        serde = AvroSerde.for_topic(registry, topic, "TrainingExample")
        examples = ClickWorld(seed=21).training_examples(args.examples)
        encoded = [serde.encode(e) for e in examples]
        producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                             "linger.ms": 20})  # fmt: skip
        for value in encoded:
            producer.produce(topic, key=b"ctr", value=value)
            producer.poll(0)
        assert producer.flush(PRODUCE_TIMEOUT_S) == 0
        print(f"{len(examples):,} examples produced to {topic}", file=sys.stderr)

        spec = configured_spec("ctr", settings)
        decoded = [serde.decode(v) for v in encoded]
        learner, in_process, in_process_cpu = learn_in_process(spec, decoded, topic)

        plan = plan_model_replay(settings, registry, "ctr", shadow="bench")
        # Where the time goes: reading alone, then reading and decoding as the replay does.
        ranges = {r.partition: (r.start, r.end) for r in plan.ranges}
        began = time.perf_counter()
        read = sum(1 for _ in read_ranges(settings, topic, ranges))
        read_rate = read / (time.perf_counter() - began)
        plain = AvroSerde.for_topic(registry, topic, "TrainingExample", logical_types=False)
        began = time.perf_counter()
        for record in read_ranges(settings, topic, ranges):
            plain.decode(record.value)
        decode_rate = read / (time.perf_counter() - began)
        began, cpu = time.perf_counter(), _cpu()
        result = run_model_replay(settings, registry, plan)
        replay = result.learned / (time.perf_counter() - began)
        replay_cpu = tuple((b - a) / result.learned * 1e6 for a, b in zip(cpu, _cpu(), strict=True))
        assert (
            result.snapshot["payload"] == learner.snapshot(result.snapshot["created_ts"])["payload"]
        )
        rounds = [(in_process, replay, in_process_cpu, replay_cpu, os.getloadavg()[0])]
        for _ in range(args.rounds - 1):
            _, rate, rate_cpu = learn_in_process(spec, decoded, topic)
            began, cpu = time.perf_counter(), _cpu()
            again = run_model_replay(settings, registry, plan)
            per = tuple((b - a) / again.learned * 1e6 for a, b in zip(cpu, _cpu(), strict=True))
            rounds.append((rate, again.learned / (time.perf_counter() - began), rate_cpu, per,
                           os.getloadavg()[0]))  # fmt: skip

        began = time.perf_counter()
        (verdict,) = verify_published(settings, registry, "ctr@bench", None, False).verdicts
        verify_s = time.perf_counter() - began
        assert verdict.identical, verdict.detail

        print("| path | examples | examples/s | vs in-process |")
        print("|---|---|---|---|")
        print(f"| in-process OnlineLearner on decoded examples | {len(decoded):,} "
              f"| {in_process:,.0f} | 1.00 |")  # fmt: skip
        print(f"| Kafka read only (no decode, no learning) | {read:,} | {read_rate:,.0f} "
              f"| {read_rate / in_process:.2f} |")  # fmt: skip
        print(f"| Kafka read + decode (timestamps as longs) | {read:,} | {decode_rate:,.0f} "
              f"| {decode_rate / in_process:.2f} |")  # fmt: skip
        print(f"| replay model (Kafka read + decode + learn + sign) | {result.learned:,} "
              f"| {replay:,.0f} | {replay / in_process:.2f} |")  # fmt: skip
        print(f"| replay verify, one version from scratch | {verdict.examples:,} "
              f"| {verdict.examples / verify_s:,.0f} | {verdict.examples / verify_s / in_process:.2f} |")  # fmt: skip
        print(f"\nverify: {verify_s:.2f} s for a version of {verdict.examples:,} examples")
        print(
            "\n| round | in-process examples/s | replay model examples/s | ratio | CPU µs per "
            "example: in-process / replay's learner / its reader | load (1 min) |"
        )
        print("|---|---|---|---|---|---|")  # fmt: skip
        for number, (rate, again_rate, rate_cpu, (parent, child), load) in enumerate(rounds, 1):
            print(f"| {number} | {rate:,.0f} | {again_rate:,.0f} | {again_rate / rate:.2f} "
                  f"| {rate_cpu:.1f} / {parent:.1f} / {child:.1f} | {load:.1f} |")  # fmt: skip
        median = statistics.median(r[1] / r[0] for r in rounds)
        print(f"replay model {median:.2f}x in-process (median of {len(rounds)} rounds)")
        # Replay reads ahead in a second process: a busy machine shows in the ratio.
        loads = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average {loads} on {os.cpu_count()} CPUs")
        return 0
    finally:
        registry_process.terminate()
        registry_process.wait()
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
