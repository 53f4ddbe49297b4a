"""`streamlearn up`: the whole system on this machine, stopped cleanly on SIGINT/SIGTERM.

Today: the embedded broker (unless a cluster is given), the topology, the schema registry
(unless an external one is given) and the schemas. The agents, a prediction worker, the
collector and the simulator join as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local import EmbeddedKafka, PinnedJar, embedded_kafka, load_lock
from streamlearn.registry import create_registry_app
from streamlearn.serde import RegistryClient, schema_text, value_subject
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology


@dataclass(frozen=True)
class UpOptions:
    embedded_kafka: bool
    kafka_port: int
    data_dir: Path | None
    start_registry: bool
    registry_port: int


def register_schemas(settings: Settings, topology_file: Path) -> list[tuple[str, str, int]]:
    """Register the value schema of every topic; returns (subject, schema, id) triples."""
    registered = []
    with RegistryClient(settings.schema_registry_url) as registry:
        for spec in load_topology(topology_file).topics:
            if spec.value_schema is not None:
                subject = value_subject(settings.topic_prefix + spec.name)
                schema_id = registry.register(subject, schema_text(spec.value_schema))
                registered.append((subject, spec.value_schema, schema_id))
    return registered


async def run_up(
    settings: Settings,
    options: UpOptions,
    say: Callable[[str], None],
    on_fetch: Callable[[PinnedJar, int, int], None] | None = None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    broker: EmbeddedKafka | None = None
    runner: web.AppRunner | None = None
    try:
        if options.embedded_kafka:
            broker = await asyncio.to_thread(
                embedded_kafka,
                settings,
                port=options.kafka_port,
                data_dir=options.data_dir,
                on_fetch=on_fetch,
            )
            status = await asyncio.to_thread(broker.start, settings.kafka_start_timeout_s)
            settings = settings.model_copy(update={"kafka_bootstrap": status.bootstrap})
            say(f"Kafka {load_lock().kafka_version} ready at {status.bootstrap}")

        topology = load_topology(settings.topology_file)
        desired = desired_topics(topology, settings.topic_prefix, settings.topic_replication_factor)
        plan = await asyncio.to_thread(
            apply_topology, AdminClient(confluent_config(settings)), desired
        )
        say(f"topics: {plan.describe()}")

        if options.start_registry:
            runner = web.AppRunner(create_registry_app(settings))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", options.registry_port).start()
            settings = settings.model_copy(
                update={"schema_registry_url": f"http://127.0.0.1:{options.registry_port}"}
            )
            say(f"schema registry at {settings.schema_registry_url}")
        registered = await asyncio.to_thread(register_schemas, settings, settings.topology_file)
        say(f"schemas: {len(registered)} registered")

        say("streamlearn is up; press Ctrl-C to stop")
        await stop.wait()
        say("stopping")
    finally:
        if runner is not None:
            await runner.cleanup()
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
