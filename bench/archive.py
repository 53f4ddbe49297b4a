#!/usr/bin/env python3
"""Archive write throughput beside raw confluent-kafka loops over the same topic.

Produces N synthetic telemetry events (Avro, wire format) to ``telemetry.events`` (6
partitions) on a real broker, then, in this one process and reading the same records
from the beginning each time:

- **consume only**: a raw confluent-kafka consume loop touching each value (the ceiling
  of a Python consumer here: no decoding at all);
- **raw archive loop**: consume → decode with the writer schema (fastavro, schema cached
  by id) → append the value to one Avro container file (fastavro, snappy): the same work
  as the archive, without its bookkeeping (metadata, buckets, per-partition files,
  renames, commits);
- **streamlearn archive** (Avro, then Parquet): an :class:`ArchiveAgent` until every
  record is in a final file and committed; timed from its first batch.

Each pipeline runs ``--rounds`` times, alternating; the table shows medians and the
archive's ratios to both raw loops.

    .venv/bin/python bench/archive.py --events 200000

Uses the broker at STREAMLEARN_KAFKA_BOOTSTRAP, or starts the embedded one.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import fastavro
from bench_kafka import bench_broker
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from ingest import make_events, produce

from streamlearn.archive import ArchiveAgent, ArchiveConfig, Limits
from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient, unframe
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parents[1]
BATCH = 2000


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )  # fmt: skip


def consume_only(settings: Settings, topic: str, total: int) -> float:
    consumer = _consumer(settings)
    consumer.subscribe([topic])
    done, size, first = 0, 0, 0.0
    while done < total:
        messages = consumer.consume(BATCH, timeout=1.0)
        if messages and not first:
            first = time.perf_counter()
        for message in messages:
            size += len(message.value() or b"")
            done += 1
    elapsed = time.perf_counter() - first
    consumer.close()
    return total / elapsed


def raw_archive_loop(settings: Settings, registry: RegistryClient, topic: str, total: int) -> float:
    consumer = _consumer(settings)
    consumer.subscribe([topic])
    schemas: dict[int, Any] = {}
    out = open(Path(tempfile.mkdtemp()) / "raw.avro", "wb")  # noqa: SIM115
    writer = None
    done, first = 0, 0.0
    while done < total:
        messages = consumer.consume(BATCH, timeout=1.0)
        if messages and not first:
            first = time.perf_counter()
        for message in messages:
            schema_id, body = unframe(message.value())
            parsed = schemas.get(schema_id)
            if parsed is None:
                parsed = schemas[schema_id] = fastavro.parse_schema(
                    registry.schema_by_id(schema_id)
                )
            value = fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
            if writer is None:
                writer = fastavro.write.Writer(out, parsed, codec="snappy")
            writer.write(value)
            done += 1
    assert writer is not None
    writer.flush()
    out.close()
    elapsed = time.perf_counter() - first
    consumer.close()
    return total / elapsed


class TimedAgent(ArchiveAgent):
    """The agent, noting when its first batch arrived."""

    first_batch: float = 0.0

    def _archive(self, consumer: Consumer, messages: Any) -> None:
        if not self.first_batch:
            self.first_batch = time.perf_counter()
        super()._archive(consumer, messages)


def archive(settings: Settings, fmt: str, total: int) -> float:
    root = tempfile.mkdtemp()
    config = ArchiveConfig(
        root=root, topics=("telemetry.events",), format=fmt,  # type: ignore[arg-type]
        group=f"bench-archive-{uuid.uuid4().hex[:6]}", limits=Limits(idle_close_s=0.2),
    )  # fmt: skip
    agent = TimedAgent(settings, config)
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            agent.run(stop)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        while agent.metrics.value(agent.metrics.records, topic="telemetry.events") < total:
            if errors:
                raise errors[0]
            time.sleep(0.01)
        finished = time.perf_counter()
    finally:
        stop.set()
        thread.join(60)
    return total / (finished - agent.first_batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    bootstrap, broker = bench_broker()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    registry_port = free_port()
    settings = Settings(
        kafka_bootstrap=bootstrap, topic_prefix=prefix,
        schema_registry_url=f"http://127.0.0.1:{registry_port}",
        data_dir=Path(tempfile.mkdtemp()),
    )  # fmt: skip
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": prefix,
    }
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
        topic = prefix + "telemetry.events"
        serde = AvroSerde.for_topic(registry, topic, "TelemetryEvent")
        events = make_events(args.events)
        produce(bootstrap, topic, [(k, serde.encode(e)) for k, e in events])
        total = len(events)
        print(f"{total} events produced to {topic}", file=sys.stderr)

        rates: dict[str, list[float]] = {"consume": [], "raw": [], "avro": [], "parquet": []}
        for round_ in range(args.rounds):
            rates["consume"].append(consume_only(settings, topic, total))
            rates["raw"].append(raw_archive_loop(settings, registry, topic, total))
            rates["avro"].append(archive(settings, "avro", total))
            rates["parquet"].append(archive(settings, "parquet", total))
            print(f"round {round_}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in rates.items()),
                  file=sys.stderr)  # fmt: skip
        median = {name: statistics.median(values) for name, values in rates.items()}
        raw, consume = median["raw"], median["consume"]
        print(f"\n{total} TelemetryEvent records, 6 partitions, median of {args.rounds} rounds\n")
        print("| pipeline | records/s | vs raw archive loop | vs consume only |")
        print("|---|---|---|---|")
        print(f"| consume only (raw confluent-kafka loop) | {consume:,.0f} | | 1.00 |")
        print(f"| raw consume → decode → Avro file | {raw:,.0f} | 1.00 | {raw / consume:.2f} |")
        for fmt in ("avro", "parquet"):
            rate = median[fmt]
            print(f"| streamlearn archive, {fmt}, until final and committed | {rate:,.0f} "
                  f"| **{rate / raw:.2f}** | {rate / consume:.2f} |")  # fmt: skip
    finally:
        registry_process.terminate()
        registry_process.wait(30)
        if broker is not None:
            broker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
