"""`streamlearn up`: the whole system on this machine, stopped cleanly on SIGINT/SIGTERM.

Today: the embedded broker (unless a cluster is given), the topology, the schema registry
(unless an external one is given), the schemas, the ingest agents (preprocess and
sessionise, in this process) and the HTTP collector. The learner, a prediction worker and
the simulator join as they land.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import faust
from aiohttp import web
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr

from streamlearn.agents.app import AGENT_NAMES, create_faust_app
from streamlearn.collector.app import create_collector_app
from streamlearn.exceptions import StreamlearnError
from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local import EmbeddedKafka, PinnedJar, embedded_kafka, load_lock
from streamlearn.serde.registration import register_topology_schemas
from streamlearn.serving import create_serving_app
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology

AGENTS_STOP_TIMEOUT_S = 15.0
REGISTRY_START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class UpOptions:
    embedded_kafka: bool
    kafka_port: int
    data_dir: Path | None
    start_registry: bool
    registry_port: int
    collector_port: int
    serve_port: int


async def _serve(runners: list[web.AppRunner], app: web.Application, port: int) -> None:
    runner = web.AppRunner(app)
    runners.append(runner)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()


async def _start_registry(settings: Settings, port: int) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamlearn", "registry", "serve", "--port", str(port), env=env
    )
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + REGISTRY_START_TIMEOUT_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise StreamlearnError(f"the schema registry exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    process.terminate()
    raise StreamlearnError(f"the schema registry did not answer on {url}")


LOCAL_SIGNING_KEY_FILE = "model-signing.key"


def local_signing_key(path: Path) -> SecretStr:
    """The embedded default's snapshot signing key: made once per data directory (owner
    read/write only) and reused, so a restarted system still verifies its own snapshots.
    Deployments set STREAMLEARN_MODEL_SIGNING_KEY from their secret store instead."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32))
    return SecretStr(path.read_text().strip())


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
    registry: asyncio.subprocess.Process | None = None
    runners: list[web.AppRunner] = []
    agents: faust.App | None = None
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
            # Its own process, as in production: the agents and the collector call it with
            # a blocking client, which would deadlock on a registry served by this loop.
            registry = await _start_registry(settings, options.registry_port)
            settings = settings.model_copy(
                update={"schema_registry_url": f"http://127.0.0.1:{options.registry_port}"}
            )
            say(f"schema registry at {settings.schema_registry_url} (pid {registry.pid})")
        registered = await asyncio.to_thread(
            register_topology_schemas, settings, settings.topology_file
        )
        say(f"schemas: {len(registered)} registered")

        if settings.model_signing_key is None:
            key_file = settings.data_dir / LOCAL_SIGNING_KEY_FILE
            settings = settings.model_copy(
                update={"model_signing_key": local_signing_key(key_file)}
            )
            say(f"model snapshots signed with this machine's key in {key_file} "
                "(STREAMLEARN_MODEL_SIGNING_KEY sets your own)")  # fmt: skip
        # Built on this loop's thread, not in a worker thread: registering a batch agent
        # creates Faust's conductor, which binds the thread's event loop (built in a
        # thread, the app never finished starting). It blocks the loop for the topic
        # and registry lookups, about a second, before anything else runs on it.
        agents = create_faust_app(settings)[0]
        await agents.start()
        say(f"agents: {', '.join(AGENT_NAMES)}")
        await _serve(runners, create_collector_app(settings), options.collector_port)
        say(f"collector at http://127.0.0.1:{options.collector_port}/v1/events")
        await _serve(runners, create_serving_app(settings), options.serve_port)
        say(
            f"prediction worker at http://127.0.0.1:{options.serve_port}"
            f"/v1/models/{{name}}:predict (models: {', '.join(settings.models)})"
        )

        say("streamlearn is up; press Ctrl-C to stop")
        await stop.wait()
        say("stopping")
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        if agents is not None:
            try:
                # Faust can wait on a rebalance still in progress; at-least-once processing
                # makes a stop that does not finish in time safe (the next start replays).
                await asyncio.wait_for(agents.stop(), AGENTS_STOP_TIMEOUT_S)
            except TimeoutError:
                say(f"agents did not stop within {AGENTS_STOP_TIMEOUT_S:.0f}s; leaving them")
        if registry is not None and registry.returncode is None:
            registry.terminate()
            await registry.wait()
        if broker is not None:
            await asyncio.to_thread(broker.stop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
