"""`streamlearn up`: the whole system on this machine, stopped cleanly on SIGINT/SIGTERM.

Start order, after the checks that need no broker (ports, TLS files, the topology file,
the data directory's signing key): the embedded broker (unless a cluster is given), the
topology, the schema registry (unless an external one is given), the schemas, then the
parts as supervised child processes: one Faust worker per agent (each its own consumer
group), the collector and a prediction worker; with a simulation, the simulator runs in
this process and sends its traffic through the collector and the worker's HTTP API. Stop
order is the reverse, front doors first, so nothing accepted is left unprocessed by a stopped stage:
simulator → collector and worker → agents (the learner publishes what it learned) →
registry → broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from rich.console import Console
from rich.live import Live

from streamlearn.agents import AGENT_NAMES
from streamlearn.archive.config import default_root
from streamlearn.kafka_clients import confluent_config
from streamlearn.kafka_local import (
    BrokerStatus,
    EmbeddedKafka,
    PinnedJar,
    embedded_kafka,
    load_lock,
)
from streamlearn.runtime.kafka_wait import saying_while_waiting_for_kafka
from streamlearn.serde import RegistryClient
from streamlearn.serving.experiment_topic import publish_experiment
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.settings import Settings
from streamlearn.simulate import LoopOptions, Simulator, new_simulator, run_simulator
from streamlearn.topology import apply_topology, desired_topics, load_topology
from streamlearn.topology.catalogue import topology_path
from streamlearn.topology.registration import register_topology_schemas
from streamlearn.up.broker import restart_hint, start_broker
from streamlearn.up.chaos_run import ChaosRun
from streamlearn.up.children import Crash, Supervisor
from streamlearn.up.doors import Doors
from streamlearn.up.drain import caught_up
from streamlearn.up.kafka_users import KafkaUsers
from streamlearn.up.options import UpOptions
from streamlearn.up.parts import check_ports_free as _check_ports_free
from streamlearn.up.parts import part_specs, registry_spec
from streamlearn.up.probes import SystemProbe
from streamlearn.up.report import Check, candidate_gate_windows, checks, figures
from streamlearn.up.signing_key import (
    LOCAL_ROTATION_FILE,
    LOCAL_SIGNING_KEY_FILE,
    with_local_key,
)
from streamlearn.up.view import render

_T = TypeVar("_T")

POLL_INTERVAL_S = 1.0
DRAIN_S = 3.0

# The experiment `up --simulate` routes: the logistic model against the Hoeffding tree.
SIMULATED_EXPERIMENT = Experiment(
    name="ranking",
    salt="ranking",
    arms=(Arm("logistic", "ctr", 0.5), Arm("tree", "ctr_tree", 0.5)),
    description="up --simulate: ctr (logistic regression) vs ctr_tree (Hoeffding tree)",
)


class _Run:
    """One `up`: what it started, in the order it must stop."""

    def __init__(self, options: UpOptions, say: Callable[[str], None], console: Console) -> None:
        self.options, self.say, self.console = options, say, console
        self.broker: EmbeddedKafka | None = None
        self.broker_pid: int | None = None
        self.borrowed_broker: BrokerStatus | None = None
        """The embedded broker when it was running before `up` (the user's own
        `streamlearn kafka start`): used, and left running."""
        self.broker_left = False
        """Whether :meth:`stop` left that broker running."""
        self.supervisor: Supervisor | None = None
        self.simulator: Simulator | None = None
        self.crashes: list[str] = []
        self.planned_restarts: list[str] = []
        """Restarts a part asked for (:attr:`Crash.planned`), said apart from crashes."""
        self.settings: Settings | None = None
        """The settings the parts run with (a started broker's, a made signing key)."""
        self.local_key_dir: Path | None = None
        """The data directory whose signing key `up` signs with (None: the setting's key)."""
        self.doors = Doors()
        """How `up` reaches its HTTP servers (https, tokens, a write key, when set)."""
        self.kafka_users = KafkaUsers()
        """Which Kafka user `up` and each part connect as (a secure broker's users)."""

    def crashed(self, crash: Crash) -> None:
        if crash.planned:
            self.planned_restarts.append(
                f"{time.strftime('%H:%M:%S')} {crash.name} restarting as planned "
                f"(exit {crash.exit_code}: a topic of its grew partitions)"
            )
            self.say(crash.describe())
            return
        self.crashes.append(f"{time.strftime('%H:%M:%S')} {crash.name} crashed "
                            f"(exit {crash.exit_code}); restarting")  # fmt: skip
        self.say(crash.describe())

    async def prepare(
        self, settings: Settings, on_fetch: Callable[[PinnedJar, int, int], None] | None
    ) -> Settings:
        options, say = self.options, self.say
        # Everything refusable without a broker is checked before one starts: a user told
        # to chmod a key file should not first wait for a broker to start and stop again.
        _check_ports_free(options)
        self.doors = doors = Doors.from_settings(settings)
        topology = load_topology(topology_path(settings))
        settings = self._with_signing_key(settings)
        if options.embedded_kafka:
            self.broker = await asyncio.to_thread(
                embedded_kafka, settings, port=options.kafka_port, data_dir=options.data_dir,
                on_fetch=on_fetch, secure=options.secure, acls=options.secure,
            )  # fmt: skip
            before = await asyncio.to_thread(self.broker.status)
            if before.running:
                self.borrowed_broker = before
            status = await start_broker(self.broker, settings.kafka_start_timeout_s)
            self.broker_pid = status.pid
            self.kafka_users = users = KafkaUsers(self.broker.config.secure)
            settings = users.operator(settings)
            settings = settings.model_copy(update={"kafka_bootstrap": status.bootstrap})
            say(f"Kafka {load_lock().kafka_version} ready at {status.bootstrap}"
                + ("" if users.material is None else " (SASL_SSL, SCRAM-SHA-512)"))  # fmt: skip

        desired = desired_topics(topology, settings.topic_prefix, settings.topic_replication_factor)
        # A broker of the user's own that does not answer: 30 s of silence before the
        # client's error, so the wait is said, with the address.
        with saying_while_waiting_for_kafka(settings.kafka_bootstrap, say):
            plan = await asyncio.to_thread(
                apply_topology, AdminClient(confluent_config(settings)), desired
            )
        say(f"topics: {plan.describe()}")
        if self.kafka_users.per_part:
            added = await asyncio.to_thread(self.kafka_users.grant, settings, topology)
            say(f"ACLs: {len(added)} added; each part connects as its own Kafka user "
                "(streamlearn-<part>), allowed what `streamlearn acls plan` lists")  # fmt: skip
        self.supervisor = Supervisor(settings.data_dir / "logs", self.crashed, doors.client_ssl)
        say(f"logs of every part in {self.supervisor.log_dir}")

        if options.start_registry:
            (registry,) = await self.supervisor.start(
                [registry_spec(settings, options.registry_port, doors, self.kafka_users)]
            )
            settings = settings.model_copy(
                update={"schema_registry_url": doors.url(options.registry_port)}
            )
            say(f"schema registry at {settings.schema_registry_url} (pid {registry.pid})")
        registered = await asyncio.to_thread(
            register_topology_schemas, settings, topology_path(settings)
        )
        say(f"schemas: {len(registered)} registered")

        if options.simulate is not None and {"ctr", "ctr_tree"} <= set(settings.models):
            await asyncio.to_thread(_publish_simulated_experiment, settings)
            say(f"experiment {SIMULATED_EXPERIMENT.name}: logistic → ctr, tree → ctr_tree")
        return settings

    def _with_signing_key(self, settings: Settings) -> Settings:
        """``settings`` signing with the data directory's key when they name none (made
        now if there is none yet), refused when others may read that key's file."""
        if settings.model_signing_key is not None:
            return settings
        settings = with_local_key(settings, make=True)
        self.local_key_dir = settings.data_dir
        rotation = settings.data_dir / LOCAL_ROTATION_FILE
        key_file = rotation if rotation.is_file() else settings.data_dir / LOCAL_SIGNING_KEY_FILE
        self.say(f"model snapshots signed with this machine's key in {key_file} "
                 "(STREAMLEARN_MODEL_SIGNING_KEY sets your own)")  # fmt: skip
        return settings

    async def start_parts(self, settings: Settings) -> SystemProbe:
        assert self.supervisor is not None
        self.settings = settings
        doors = self.doors
        specs = part_specs(settings, self.options, doors, self.kafka_users)
        # The run begins before its parts start, not once they are ready: a warm-started
        # learner publishes its first version while `up` waits, and that version is this
        # run's (the probe marks a model first seen created before this as resumed).
        began_s = time.time()
        children = await self.supervisor.start(specs)
        for child in children:
            self.say(f"{child.spec.name}: pid {child.pid}")
        self.say(f"agents: {', '.join(AGENT_NAMES)} (one process and consumer group each)")
        self.say(f"archive: files under {default_root(settings)} (`streamlearn archive ls`)")
        self.say(f"collector at {doors.url(self.options.collector_port, '/v1/events')}")
        self.say(f"dashboard at {doors.url(self.options.dashboard_port)}")
        self.say(
            f"prediction worker at {doors.url(self.options.serve_port)}"
            f"/v1/models/{{name}}:predict (models: {', '.join(settings.models)})"
        )
        return SystemProbe(
            {s.name: s.metrics_url for s in specs if s.metrics_url is not None},
            doors.url(self.options.serve_port, "/v1/models"),
            doors.api_headers,
            started_s=began_s,
        )

    async def stop(self) -> None:
        if self.supervisor is not None:
            # The archive after the agents: it makes what it read final as it stops.
            await self.supervisor.stop(
                [("collector", "serve"), AGENT_NAMES, ("archive",), ("registry",)]
            )
            for child in self.supervisor.children:
                if child.unclean_stop is not None:
                    self.say(f"{child.spec.name}: {child.unclean_stop}")
        if self.broker is not None:
            # status() asks the broker for metadata (up to 2 s): off the event loop.
            self.broker_left = await asyncio.to_thread(self._borrowed_broker_running)
            if self.broker_left:
                assert self.borrowed_broker is not None
                self.say(f"Kafka left running at {self.borrowed_broker.bootstrap} (it was "
                         "running before `up`; `streamlearn kafka stop` stops it)")  # fmt: skip
                return
            if await asyncio.to_thread(self.broker.stop):  # False: none was running
                stopped = "" if self.broker.stopped_cleanly else " (killed)"
                hint = restart_hint(self.broker.config, self.local_key_dir)
                self.say(f"Kafka stopped{stopped}; {hint}")

    def _borrowed_broker_running(self) -> bool:
        """Whether the broker is the one that ran before `up` (not one `up` started, nor
        one a chaos fault restarted, which dies with `up` anyway)."""
        if self.broker is None or self.borrowed_broker is None:
            return False
        status = self.broker.status()
        return status.running and status.pid == self.borrowed_broker.pid


async def _start(
    run: _Run, settings: Settings, on_fetch: Callable[[PinnedJar, int, int], None] | None
) -> SystemProbe:
    return await run.start_parts(await run.prepare(settings, on_fetch))


async def _unless_stopped(stop: asyncio.Event, starting: Awaitable[_T]) -> _T | None:
    """``starting``'s result, or None as soon as ``stop`` is set (starting is cancelled:
    whatever it started is stopped by the caller's clean-up, not waited for)."""
    task = asyncio.ensure_future(starting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def _publish_simulated_experiment(settings: Settings) -> None:
    with RegistryClient.for_settings(settings) as registry:
        publish_experiment(settings, registry, SIMULATED_EXPERIMENT)


async def _watch(run: _Run, probe: SystemProbe, stop: asyncio.Event, started: float) -> None:
    """Poll and draw until ``stop`` or the duration."""
    options = run.options
    assert run.supervisor is not None
    children = run.supervisor.children
    live = Live(console=run.console, auto_refresh=False) if options.live else None
    simulation = None if run.simulator is None else run.simulator.summary

    def current() -> dict[str, Any]:
        return figures(probe, children, simulation, time.monotonic() - started)

    async with run.doors.session() as session:
        with live if live is not None else contextlib.nullcontext():
            while not stop.is_set():
                await probe.poll(session)
                if live is not None:
                    view = render(current(), options.duration_s, run.crashes, run.planned_restarts)
                    live.update(view, refresh=True)
                elapsed = time.monotonic() - started
                if options.duration_s is not None and elapsed >= options.duration_s:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_INTERVAL_S)


async def _drain_and_take_figures(
    run: _Run,
    probe: SystemProbe,
    elapsed: float,
    chaos: ChaosRun | None,
    simulation: asyncio.Task[Any] | None,
    simulation_stop: asyncio.Event,
) -> dict[str, Any]:
    """After the run: the faults ended, the simulator stopped, the pipeline drained; then
    the final figures (with ``agents_behind`` when the agents' lag was read)."""
    say = run.say
    behind: dict[str, int] | None = None
    if chaos is not None:
        await chaos.end_faults()
    if simulation is not None:
        say("stopping the simulator; waiting for the pipeline to drain (Ctrl-C stops at once)")
        simulation_stop.set()
        await simulation
        # What the simulator sent last is still on its way through the agents.
        await asyncio.sleep(DRAIN_S)
        if chaos is None and run.settings is not None:
            # Until each agent committed all its input (chaos runs drain longer, below):
            # a partition not being read shows nowhere else.
            try:
                behind = await caught_up(run.settings)
            except (KafkaException, TimeoutError) as exc:  # e.g. no right to describe groups
                say(f"could not read the agents' committed offsets: {exc}")
    summary = run.simulator.summary if run.simulator is not None else None

    async def polled() -> dict[str, Any]:
        async with run.doors.session() as session:
            await probe.poll(session)
        assert run.supervisor is not None
        return figures(probe, run.supervisor.children, summary, elapsed, final=True)

    if chaos is not None:
        await chaos.drain_and_check(polled)
    final = await polled()
    if behind is not None:
        final["agents_behind"] = behind
    return final


async def run_up(
    settings: Settings,
    options: UpOptions,
    say: Callable[[str], None],
    on_fetch: Callable[[PinnedJar, int, int], None] | None = None,
    console: Console | None = None,
) -> tuple[dict[str, Any], list[Check]] | None:
    """Run until SIGINT/SIGTERM or the duration; the final figures and checks (None when
    it stopped before the parts were up)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    run = _Run(options, say, console or Console(stderr=True))
    simulation: asyncio.Task[Any] | None = None
    simulation_stop = asyncio.Event()
    final: dict[str, Any] | None = None
    chaos: ChaosRun | None = None
    try:
        starting = await _unless_stopped(stop, _start(run, settings, on_fetch))
        if starting is None:
            say("stopping before everything was up")
            return None
        probe = starting
        started = time.monotonic()
        if options.simulate is not None:
            run.simulator = new_simulator(
                options.simulate,
                LoopOptions(
                    collector_url=run.doors.url(options.collector_port),
                    predict_url=run.doors.url(options.serve_port),
                    ssl=run.doors.client_ssl,
                    write_key=run.doors.write_key,
                    api_token=run.doors.api_token,
                ),
            )
            if options.chaos is not None and run.settings is not None:
                chaos = ChaosRun(options.chaos, run.settings, options.duration_s,
                                 lambda: run.supervisor.children if run.supervisor else [],
                                 run.broker, run.simulator, say)  # fmt: skip
                chaos.start(started)
            simulation = asyncio.create_task(run_simulator(run.simulator, simulation_stop))
            say(f"simulating {options.simulate.rate:g} page views/s "
                f"of {options.simulate.users} people (seed {options.simulate.seed})")  # fmt: skip
        if options.duration_s is None:
            say("streamlearn is up; press Ctrl-C to stop")
        else:
            say(f"streamlearn is up; stopping after {options.duration_s:g}s (or Ctrl-C)")
        await _watch(run, probe, stop, started)
        elapsed = time.monotonic() - started
        # A Ctrl-C that ended the run asked for its summary, drain and all; one from here
        # on (the drain of a chaos run lasts minutes) asks to stop now, and is heard.
        stop.clear()
        final = await _unless_stopped(
            stop, _drain_and_take_figures(run, probe, elapsed, chaos, simulation, simulation_stop)
        )
        if final is None:
            say("Ctrl-C during the drain: stopping without the summary (its figures and checks "
                "would judge a drain cut short)")  # fmt: skip
            return None
        say("stopping")
    finally:
        if simulation is not None and not simulation.done():
            simulation_stop.set()
            simulation.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await simulation
        await run.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
    if final is None or run.supervisor is None:
        return None
    final["processes"] = figures(probe, run.supervisor.children, None, 0)["processes"]
    if run.broker is not None and run.broker_left:
        final["processes"]["kafka"] = {
            "state": "left running", "pid": run.broker_pid, "starts": 0,
            "crashes": 0, "crashed_with": [], "planned_restarts": 0, "restarted_for": [],
            "exit_code": None, "killed": False, "clean": True,
            "unclean": None,
        }  # fmt: skip
    elif run.broker is not None:
        clean = bool(run.broker.stopped_cleanly)
        final["processes"]["kafka"] = {
            "state": "stopped", "pid": run.broker_pid, "starts": 1, "crashes": 0,
            "crashed_with": [], "planned_restarts": 0, "restarted_for": [], "exit_code": None,
            "killed": not clean, "clean": clean,
            "unclean": None if clean else "did not stop after SIGTERM: killed",
        }  # fmt: skip
    if run.simulator is not None:
        final["simulator"] = run.simulator.summary.to_dict()
    assert run.settings is not None
    results = checks(final, candidate_windows=candidate_gate_windows(run.settings))
    return final, results if chaos is None else chaos.report(final, results)
