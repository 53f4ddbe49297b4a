#!/usr/bin/env python3
"""Serde cost per record: AvroSerde (wire format, cached ids) beside plain fastavro.

Encodes and decodes the same TelemetryEvent records with ``AvroSerde`` and with bare
``fastavro.schemaless_writer`` / ``schemaless_reader`` on the same parsed schema, and
prints µs per record and the ratio (goal: within 1.3x of plain fastavro). The registry is
in memory: it is consulted once per schema id, so it is not part of the per-record cost.
A second decode row reads data written by an older schema version (resolution).

    .venv/bin/python bench/serde.py --records 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro

from streamlearn.serde import AvroSerde, InMemoryRegistry, load_schema


def make_events(count: int) -> list[dict[str, Any]]:
    start = datetime(2026, 11, 30, tzinfo=UTC)
    return [
        {
            "event_id": str(uuid.UUID(int=i + 1)),
            "event_type": ("page_view", "add_to_cart", "search")[i % 3],
            "user_id": f"user-{i % 997}",
            "session_hint": None,
            "client_ts": start + timedelta(milliseconds=i),
            "received_ts": start + timedelta(milliseconds=i + 40),
            "url": f"https://shop.example/products/{i % 500}",
            "referrer": "https://search.example/?q=shoes",
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
            "ip": f"203.0.113.{i % 250}",
            "app_version": "shop-web 4.2.0",
            "properties": {"product": f"p-{i % 500}", "position": str(i % 10)},
            "context": {"locale": "en-GB"},
        }
        for i in range(count)
    ]


def best_of(repeat: int, run: Callable[[], None], count: int) -> float:
    """Median µs per record over ``repeat`` runs."""
    timings = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        timings.append((time.perf_counter() - began) / count * 1e6)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    # No records divided by zero, fewer printed a table of negative microseconds, and no
    # repeat failed on the median of nothing.
    if args.records < 1:
        parser.error(f"--records must be >= 1, not {args.records}")
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, not {args.repeat}")

    events = make_events(args.records)
    registry = InMemoryRegistry()
    serde = AvroSerde.for_topic(registry, "telemetry.events", "TelemetryEvent")
    parsed = fastavro.parse_schema(load_schema("TelemetryEvent"))

    def plain_encode() -> list[bytes]:
        out = []
        for event in events:
            buffer = io.BytesIO()
            fastavro.schemaless_writer(buffer, parsed, event)
            out.append(buffer.getvalue())
        return out

    def serde_encode() -> list[bytes]:
        return [serde.encode(event) for event in events]

    plain_bytes, framed = plain_encode(), serde_encode()

    def plain_decode() -> None:
        for data in plain_bytes:
            fastavro.schemaless_reader(io.BytesIO(data), parsed)

    def serde_decode() -> None:
        for data in framed:
            serde.decode(data)

    old_schema = load_schema("TelemetryEvent")
    old_schema["fields"] = [f for f in old_schema["fields"] if f["name"] != "context"]
    old_writer = AvroSerde(registry, old_schema, serde.subject)
    old_framed = [old_writer.encode(event) for event in events]
    old_parsed = fastavro.parse_schema(old_schema)
    old_plain = [bytes(data[5:]) for data in old_framed]

    def plain_resolve() -> None:
        for data in old_plain:
            fastavro.schemaless_reader(io.BytesIO(data), old_parsed, parsed)

    def serde_resolve() -> None:
        for data in old_framed:
            serde.decode(data)

    rows = [
        ("encode", best_of(args.repeat, plain_encode, args.records),
         best_of(args.repeat, serde_encode, args.records)),
        ("decode", best_of(args.repeat, plain_decode, args.records),
         best_of(args.repeat, serde_decode, args.records)),
        ("decode older writer (resolution)", best_of(args.repeat, plain_resolve, args.records),
         best_of(args.repeat, serde_resolve, args.records)),
    ]  # fmt: skip
    print(f"TelemetryEvent, {args.records} records, median of {args.repeat} runs")
    print("| operation | plain fastavro | AvroSerde | ratio |")
    print("|---|---|---|---|")
    for name, plain, ours in rows:
        print(f"| {name} | {plain:.2f} µs | {ours:.2f} µs | {ours / plain:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
