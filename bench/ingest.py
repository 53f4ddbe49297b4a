#!/usr/bin/env python3
"""Ingest throughput: preprocess + sessionise (one worker process) beside a raw loop.

Produces N synthetic telemetry events (humans browsing, 2 % duplicates, a few crawlers) to
``telemetry.events`` on a real broker, then measures, each reading the same input from the
beginning:

- **raw**: a confluent-kafka consume → Avro decode → Avro encode → produce loop with no
  logic (the limit for a Python process on this machine);
- **streamlearn**: ``streamlearn agents run`` (preprocess and sessionise in one worker);
- **quix** (with ``--quix``): the same preprocess code as a Quix Streams app
  (``bench/quix_preprocess.py`` in ``bench/.venv-quix``, made by ``bench/setup-quix-venv``).

Throughput is measured on the outputs' broker timestamps (first to last output record),
so process start-up is not counted; for streamlearn the end is when sessionise has
committed every ``events.clean`` offset. Prints events/s and the ratio.

    .venv/bin/python bench/ingest.py --events 100000

Uses the broker at STREAMLEARN_KAFKA_BOOTSTRAP, or starts the embedded one.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parents[1]
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]  # fmt: skip


def make_events(count: int, seed: int = 1) -> list[tuple[bytes, dict[str, Any]]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 30, 6, tzinfo=UTC)
    users = max(count // 40, 10)
    events = []
    for i in range(count):
        user = f"user-{rng.randrange(users)}"
        at = start + timedelta(milliseconds=i * 20)
        event = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "event_type": rng.choice(("page_view", "search", "add_to_cart")),
            "user_id": user,
            "client_ts": at - timedelta(milliseconds=rng.randint(5, 800)),
            "received_ts": at,
            "url": f"https://shop.example/p/{rng.randrange(300)}",
            "user_agent": AGENTS[hash(user) % (len(AGENTS) - 1)]
            if rng.random() > 0.01
            else AGENTS[-1],
            "ip": f"203.0.113.{rng.randrange(250)}",
            "app_version": "shop-web 4.2.0",
            "properties": {"position": str(rng.randrange(10))},
        }
        events.append((user.encode(), event))
        if rng.random() < 0.02:
            events.append((user.encode(), event))
    return events


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 20, "partitioner": "murmur2_random"}
    )
    for key, value in records:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush(60)


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-offsets"})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
        for p in partitions
    }
    consumer.close()
    return ends


def output_span(bootstrap: str, topic: str) -> tuple[int, float]:
    """Records in ``topic`` and seconds between the first and last record timestamps."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    ends = end_offsets(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in ends])
    count, first, last = 0, float("inf"), 0.0
    while count < sum(ends.values()):
        for message in consumer.consume(10_000, timeout=1.0):
            stamp = message.timestamp()[1] / 1000
            first, last = min(first, stamp), max(last, stamp)
            count += 1
    consumer.close()
    return count, last - first


def run_raw(
    settings: Settings, registry: RegistryClient, source: str, sink: str, total: int
) -> None:
    reader = AvroSerde.for_topic(registry, source, "TelemetryEvent")
    writer = AvroSerde(registry, "TelemetryEvent", f"{sink}-value")
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
         "auto.offset.reset": "earliest", "enable.auto.commit": True}
    )  # fmt: skip
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 5})
    consumer.subscribe([source])
    done = 0
    while done < total:
        for message in consumer.consume(1000, timeout=1.0):
            event = reader.decode(message.value())
            producer.produce(sink, key=message.key(), value=writer.encode(event))
            done += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()


def committed_all(settings: Settings, group: str, topic: str) -> bool:
    ends = end_offsets(settings.kafka_bootstrap, topic)
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    committed = consumer.committed([TopicPartition(topic, p) for p in ends], timeout=30)
    consumer.close()
    return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in committed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quix", action="store_true", help="also run the Quix Streams baseline")
    parser.add_argument(
        "--agents", default="preprocess,sessionise", type=lambda v: v.split(","),
        help="agents the worker runs (to see each one's cost)",
    )  # fmt: skip
    args = parser.parse_args()

    bootstrap, broker = bench_broker()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    registry_port = free_port()
    env = {**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap, "STREAMLEARN_TOPIC_PREFIX": prefix,
           "STREAMLEARN_SCHEMA_REGISTRY_URL": f"http://127.0.0.1:{registry_port}"}  # fmt: skip
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix,
        schema_registry_url=f"http://127.0.0.1:{registry_port}",
    )  # fmt: skip
    registry_process = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(registry_port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        topology = load_topology(REPO / "topology" / "topics.yaml")
        apply_topology(admin, desired_topics(topology, prefix))
        # Output timestamps = broker append times, whoever produces (Quix keeps the input's
        # timestamp on outputs, Faust and the raw loop stamp send time).
        resource = ConfigResource(
            ConfigResource.Type.TOPIC, prefix + "events.clean",
            incremental_configs=[ConfigEntry("message.timestamp.type", "LogAppendTime",
                                             incremental_operation=AlterConfigOpType.SET)],
        )  # fmt: skip
        admin.incremental_alter_configs([resource])[resource].result()
        time.sleep(3)
        registry = RegistryClient(settings.schema_registry_url)
        source = prefix + "telemetry.events"
        serde = AvroSerde.for_topic(registry, source, "TelemetryEvent")
        events = make_events(args.events)
        produce(bootstrap, source, [(k, serde.encode(e)) for k, e in events])
        total = len(events)
        print(f"{total} events produced to {source}", file=sys.stderr)

        raw_sink = prefix + "raw.out"
        from confluent_kafka.admin import NewTopic

        admin.create_topics([NewTopic(raw_sink, 6, 1, config=APPEND_TIME)])[raw_sink].result()
        run_raw(settings, registry, source, raw_sink, total)
        raw_count, raw_span = output_span(bootstrap, raw_sink)
        raw_rate = raw_count / raw_span

        quix_row = None
        if args.quix:
            quix_python = REPO / "bench" / ".venv-quix" / "bin" / "python"
            if not quix_python.exists():
                subprocess.run([str(REPO / "bench" / "setup-quix-venv")], check=True)
            quix_sink = prefix + "quix.out"
            admin.create_topics([NewTopic(quix_sink, 6, 1, config=APPEND_TIME)])[quix_sink].result()
            subprocess.run(
                [str(quix_python), str(REPO / "bench" / "quix_preprocess.py"), bootstrap,
                 settings.schema_registry_url, source, quix_sink, str(total)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            quix_count, quix_span = output_span(bootstrap, quix_sink)
            quix_rate = total / quix_span
            quix_row = (quix_count, quix_rate)

        worker_log = Path(tempfile.mkdtemp()) / "worker.log"
        with worker_log.open("w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "streamlearn", "agents", "run", "--only", ",".join(args.agents)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        print(f"worker log: {worker_log}", file=sys.stderr)
        if os.environ.get("BENCH_PROFILE"):
            # py-spy samples the worker for 20 s (see docs/agents.md, Performance).
            subprocess.Popen(
                ["py-spy", "record", "-d", "12", "-f", "raw", "-o", os.environ["BENCH_PROFILE"],
                 "-p", str(worker.pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        clean_topic = prefix + "events.clean"
        group = f"{prefix}streamlearn-agents"
        watched = [source] + ([clean_topic] if "sessionise" in args.agents else [])
        while not all(committed_all(settings, group, topic) for topic in watched):
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited with {worker.returncode}; see {worker_log}")
            time.sleep(1.0)
        finished = time.time()
        clean_count, clean_span = output_span(bootstrap, clean_topic)
        first_output = first_timestamp(bootstrap, clean_topic)
        ours_rate = total / (finished - first_output)
        print("| pipeline | events | events/s | vs raw |")
        print("|---|---|---|---|")
        print(f"| raw consume → decode → encode → produce | {raw_count} | {raw_rate:,.0f} | 1.00 |")
        # events.clean's own timestamps time preprocess alone, like the raw loop's; the
        # end-to-end figure waits for the agents' commits (every 2.8 s), so it also
        # carries up to one commit interval and the 1 s polling of this script.
        pre_rate = total / clean_span
        print(
            f"| streamlearn preprocess, output span (1 worker) | {total} in, {clean_count} clean "
            f"| {pre_rate:,.0f} | {pre_rate / raw_rate:.2f} |"
        )
        print(
            f"| streamlearn {' + '.join(args.agents)}, until committed (1 worker) | {total} in "
            f"| {ours_rate:,.0f} | {ours_rate / raw_rate:.2f} |"
        )
        if quix_row is not None:
            quix_count, quix_rate = quix_row
            print(
                f"| Quix Streams, same preprocess code, output span | {total} in, {quix_count} "
                f"clean | {quix_rate:,.0f} | {quix_rate / raw_rate:.2f} |"
            )
            print(f"\nstreamlearn preprocess / Quix: {pre_rate / quix_rate:.2f}")
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(60)
        registry_process.terminate()
        registry_process.wait(30)
        if broker is not None:
            broker.stop()
    return 0


def first_timestamp(bootstrap: str, topic: str) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}"})
    ends = end_offsets(bootstrap, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in ends if ends[p]])
    first = float("inf")
    seen: set[int] = set()
    while len(seen) < sum(1 for p in ends if ends[p]):
        for message in consumer.consume(100, timeout=1.0):
            if message.partition() not in seen:
                seen.add(message.partition())
                first = min(first, message.timestamp()[1] / 1000)
    consumer.close()
    return first


if __name__ == "__main__":
    raise SystemExit(main())
