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
so process start-up is not counted; for streamlearn "until committed" ends when the
worker's group has committed every input offset (``events.clean``'s too with sessionise),
read every 50 ms. Each round has topics of its own; ``--baseline-src DIR`` runs a second
worker from another version's ``src/`` (PYTHONPATH) in rounds of its own, alternating,
each against the raw loop of its round. Prints events/s and the ratios (median over the
rounds); ``--json`` writes them, ``--profile`` samples the worker with py-spy.

    .venv/bin/python bench/ingest.py --events 50000 --agents preprocess,sessionise --rounds 2

Uses the broker at STREAMLEARN_KAFKA_BOOTSTRAP, or starts the embedded one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_kafka import bench_broker
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from ingest_topics import CommitWatch, end_offsets, first_timestamp, output_span

from streamlearn.kafka_local import free_port
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

REPO = Path(__file__).resolve().parents[1]
APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
POLL_S = 0.05
"""How often the committed offsets are read (one consumer, one request each time)."""
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


def run_worker(
    bootstrap: str,
    env: dict[str, str],
    prefix: str,
    agents: list[str],
    src: Path | None,
    profile: Path | None,
    total: int,
    separate: bool = False,
) -> dict[str, float]:
    """One ``streamlearn agents run`` worker (the code in ``src``, or this checkout's) on
    the round's input, timed by broker append times until it committed everything; with
    ``separate``, one worker per agent, each in its group, as ``streamlearn up`` runs them."""
    if src is not None:
        env = {**env, "PYTHONPATH": str(src)}
    clean_topic = prefix + "events.clean"
    inputs = {"preprocess": prefix + "telemetry.events", "sessionise": clean_topic}
    groups = (
        [([agent], f"streamlearn-{agent}") for agent in agents]
        if separate
        else [(agents, "streamlearn-agents")]
    )
    workers, watches = [], []
    spy = None
    try:  # from the first worker on: one that failed to start must not leave the rest running
        for chosen, group in groups:
            worker_log = Path(tempfile.mkdtemp()) / "worker.log"
            with worker_log.open("w") as log:
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "streamlearn", "agents", "run", "--only",
                     ",".join(chosen), "--group", group],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                ))  # fmt: skip
            print(f"worker log ({src or 'this checkout'}, {group}): {worker_log}", file=sys.stderr)
            watches.append(CommitWatch(bootstrap, prefix + group, [inputs[a] for a in chosen]))
        if profile is not None:
            # Sampled from the first output on, so start-up (imports, recovery) is left out.
            while not any(end_offsets(bootstrap, clean_topic).values()):
                time.sleep(0.05)
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "-f", "raw", "-o",
                 str(profile), "-p", str(workers[0].pid)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        while not all(watch.done() for watch in watches):
            for worker in workers:
                if worker.poll() is not None:
                    raise SystemExit(f"a worker exited with {worker.returncode}; see its log")
            time.sleep(POLL_S)
        finished = time.time()
    finally:
        for watch in watches:
            watch.close()
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
    clean_count, clean_span = output_span(bootstrap, clean_topic)
    first_output = first_timestamp(bootstrap, clean_topic)
    return {
        "clean": clean_count,
        "output_span_rate": total / clean_span,
        "committed_rate": total / (finished - first_output),
    }


def run_round(
    args: argparse.Namespace, bootstrap: str, registry_url: str, src: Path | None
) -> dict[str, Any]:
    """A fresh set of topics, the events produced, the raw loop, then the worker."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    env = {**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap, "STREAMLEARN_TOPIC_PREFIX": prefix,
           "STREAMLEARN_SCHEMA_REGISTRY_URL": registry_url}  # fmt: skip
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix,
                        schema_registry_url=registry_url)  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    apply_topology(admin, desired_topics(load_topology(REPO / "topology" / "topics.yaml"), prefix))
    # Output timestamps = broker append times, whoever produces (Quix keeps the input's
    # timestamp on outputs, Faust and the raw loop stamp send time).
    resource = ConfigResource(
        ConfigResource.Type.TOPIC, prefix + "events.clean",
        incremental_configs=[ConfigEntry("message.timestamp.type", "LogAppendTime",
                                         incremental_operation=AlterConfigOpType.SET)],
    )  # fmt: skip
    admin.incremental_alter_configs([resource])[resource].result()
    time.sleep(3)
    registry = RegistryClient(registry_url)
    source = prefix + "telemetry.events"
    serde = AvroSerde.for_topic(registry, source, "TelemetryEvent")
    events = make_events(args.events)
    produce(bootstrap, source, [(k, serde.encode(e)) for k, e in events])
    total = len(events)
    print(f"{total} events produced to {source}", file=sys.stderr)

    raw_sink = prefix + "raw.out"
    admin.create_topics([NewTopic(raw_sink, 6, 1, config=APPEND_TIME)])[raw_sink].result()
    run_raw(settings, registry, source, raw_sink, total)
    raw_count, raw_span = output_span(bootstrap, raw_sink)
    result: dict[str, Any] = {"events": total, "raw_rate": raw_count / raw_span,
                              "src": str(src) if src else None,
                              "load": os.getloadavg()[0]}  # fmt: skip
    if args.quix:
        quix_sink = prefix + "quix.out"
        admin.create_topics([NewTopic(quix_sink, 6, 1, config=APPEND_TIME)])[quix_sink].result()
        quix = subprocess.run(
            # QUIX_PYTHON: made ready by ready_quix_environment before the broker started
            [str(QUIX_PYTHON), str(REPO / "bench" / "quix_preprocess.py"), bootstrap,
             registry_url, source, quix_sink, str(total)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        )  # fmt: skip
        if quix.returncode != 0:  # its last lines say why (librdkafka's are above them)
            sys.stderr.write("\n".join(quix.stderr.splitlines()[-15:]) + "\n")
            raise SystemExit(f"the Quix Streams baseline failed (exit {quix.returncode})")
        result["quix_rate"] = total / output_span(bootstrap, quix_sink)[1]
    result.update(
        run_worker(bootstrap, env, prefix, args.agents, src, args.profile, total, args.separate)
    )
    return result


def print_round(result: dict[str, Any], agents: list[str], separate: bool) -> None:
    raw, total = result["raw_rate"], result["events"]
    who = f" ({result['src']})" if result["src"] else ""
    print(f"\nload average {result['load']:.2f}{who}")
    print("| pipeline | events | events/s | vs raw |")
    print("|---|---|---|---|")
    print(f"| raw consume → decode → encode → produce | {total} | {raw:,.0f} | 1.00 |")
    # events.clean's own timestamps time preprocess alone, like the raw loop's; the
    # end-to-end figure waits for the agents' commits, polled every POLL_S.
    pre = result["output_span_rate"]
    print(f"| streamlearn preprocess, output span (1 worker) | {total} in, {result['clean']} "
          f"clean | {pre:,.0f} | {pre / raw:.2f} |")  # fmt: skip
    ours = result["committed_rate"]
    workers = f"{len(agents)} workers" if separate else "1 worker"
    print(f"| streamlearn {' + '.join(agents)}, until committed ({workers}) | {total} in "
          f"| {ours:,.0f} | {ours / raw:.2f} |")  # fmt: skip
    if "quix_rate" in result:
        quix = result["quix_rate"]
        print(f"| Quix Streams, same preprocess code, output span | {total} in | {quix:,.0f} "
              f"| {quix / raw:.2f} |")  # fmt: skip
        print(f"\nstreamlearn preprocess / Quix: {pre / quix:.2f}")


def summary(results: list[dict[str, Any]], agents: list[str], separate: bool) -> dict[str, Any]:
    """Median ratios to the raw loop of each round, per code version."""
    versions: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        versions.setdefault(result["src"] or "candidate", []).append(result)
    out: dict[str, Any] = {"agents": agents, "rounds": results, "separate": separate}
    for version, rounds in versions.items():
        out[version] = {
            "output_span_vs_raw": statistics.median(r["output_span_rate"] / r["raw_rate"] for r in rounds),
            "committed_vs_raw": statistics.median(r["committed_rate"] / r["raw_rate"] for r in rounds),
        }  # fmt: skip
    return out


QUIX_PYTHON = REPO / "bench" / ".venv-quix" / "bin" / "python"
SETUP_QUIX = REPO / "bench" / "setup-quix-venv"

MEASURED_AGENTS = ("preprocess", "sessionise")
"""The agents whose commits it watches (their inputs are known); preprocess writes what
sessionise reads."""


def refuse_what_it_cannot_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Before the broker starts: another agent ran the whole round, then failed (KeyError)
    and left its worker running; sessionise alone waited for input no one wrote; no round
    at all printed nothing and exited 0."""
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, not {args.rounds}")
    if args.events < 1:
        parser.error(f"--events must be >= 1, not {args.events}")
    if "preprocess" not in args.agents or not set(args.agents) <= set(MEASURED_AGENTS):
        parser.error(f"--agents {','.join(args.agents)}: preprocess, or preprocess,sessionise")


def ready_quix_environment() -> None:
    """Before the broker starts: the Quix Streams baseline's virtualenv imports quixstreams
    and streamlearn, or is made by bench/setup-quix-venv. Its python existing was taken
    for ready: a setup that failed (no package index) left one without quixstreams, and
    every later run failed at the end of its round."""
    imports = [str(QUIX_PYTHON), "-c", "import quixstreams, streamlearn"]
    if QUIX_PYTHON.exists() and subprocess.run(imports, capture_output=True).returncode == 0:
        return
    print(f"bench: making the Quix Streams baseline's environment ({SETUP_QUIX})", file=sys.stderr)
    setup = subprocess.run([str(SETUP_QUIX)], check=False)  # its output says why it fails
    if setup.returncode != 0:
        raise SystemExit(
            f"bench/setup-quix-venv failed (exit {setup.returncode}; its output is above): "
            "run it again once pip can reach the package index, or leave out --quix"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quix", action="store_true", help="also run the Quix Streams baseline")
    parser.add_argument(
        "--agents", default="preprocess,sessionise", type=lambda v: v.split(","),
        help="agents the worker runs (to see each one's cost): preprocess, or "
        "preprocess,sessionise",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds (alternating with --baseline-src)"
    )
    parser.add_argument("--baseline-src", type=Path,
                        help="also run the worker from this src/ (another version), alternating")  # fmt: skip
    parser.add_argument(
        "--profile", type=Path, help="py-spy raw profile of the worker (last round)"
    )
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    parser.add_argument("--separate", action="store_true",
                        help="one worker process per agent, each in its own group (as `up`)")  # fmt: skip
    args = parser.parse_args(argv)
    refuse_what_it_cannot_run(parser, args)
    if args.quix:
        ready_quix_environment()

    bootstrap, broker = bench_broker()
    registry_port = free_port()
    registry_url = f"http://127.0.0.1:{registry_port}"
    registry_process = subprocess.Popen(
        [sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(registry_port)],
        env={**os.environ, "STREAMLEARN_KAFKA_BOOTSTRAP": bootstrap},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    results = []
    try:
        versions: list[Path | None] = (
            [None] if args.baseline_src is None else [None, args.baseline_src]
        )
        for number in range(args.rounds):
            # Alternating which version goes first spreads the machine's drift over both.
            for src in versions if number % 2 == 0 else versions[::-1]:
                results.append(run_round(args, bootstrap, registry_url, src))
                print_round(results[-1], args.agents, args.separate)
    finally:
        registry_process.terminate()
        registry_process.wait(30)
        if broker is not None:
            broker.stop()
    figures = summary(results, args.agents, args.separate)
    for version in ("candidate", str(args.baseline_src)):
        if version in figures:
            f = figures[version]
            print(f"\n{version}: preprocess output span {f['output_span_vs_raw']:.2f}x the raw loop, "
                  f"{' + '.join(args.agents)} until committed {f['committed_vs_raw']:.2f}x "
                  f"(median of {sum(1 for r in results if (r['src'] or 'candidate') == version)} rounds)")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
