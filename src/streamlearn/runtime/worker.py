"""A worker process's runtime, built from settings for the chosen steps.

No module-level app and no hard-coded broker: :func:`create_faust_app` builds a Faust app
that runs some steps (:mod:`streamlearn.runtime.step`), and several worker processes with
the same settings and group share the work through Kafka partitions.

Processing guarantee: at-least-once, made exact by idempotency. Each batch's outputs are
delivered, then its state changes written, then its offsets acknowledged
(:mod:`streamlearn.runtime.checkpoint`); Faust commits acknowledged offsets after flushing
its producer. A worker killed mid-stream re-reads from its last commit with the state last
written, and the steps make that replay harmless (preprocess recognises a replayed record
by its offset, sessionise and label-join count an event id once and re-emit identical
records, the learner resumes from its snapshot's offsets). Faust's own exactly-once mode
is not used: it sends outputs in the transaction of the *output* partition, not of the
input whose offset commits, so outputs and offsets are not atomic (measured: a SIGKILL
repeated outputs). See docs/design.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import faust
from confluent_kafka.admin import AdminClient

from streamlearn.kafka_clients import AGENT_MAX_REQUEST_BYTES, aiokafka_config, confluent_config
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.faust_app import BatchingApp, WorkerRuntime
from streamlearn.runtime.faust_internals import BatchConsumer
from streamlearn.runtime.faust_step import CHANGELOG_SEGMENTS, bind_step
from streamlearn.runtime.faust_store import STORE_URL
from streamlearn.runtime.group_settings import agent_client_id, settings_fingerprint
from streamlearn.runtime.lag import REFRESH_S, PartitionLag
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Step
from streamlearn.runtime.topic_reader import read_to_end
from streamlearn.serde import RegistryClient, SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.plan import DesiredTopic

DEFAULT_GROUP = "streamlearn-agents"
BATCH_TRANSPORT_SCHEME = "streamlearn"
# A rejected record carries the original bytes, which may be up to the source's limit;
# a snapshot on model.state may be several MB (AGENT_MAX_REQUEST_BYTES, in kafka_clients
# so that the learner's step reads it without loading Faust).
MAX_REQUEST_BYTES = AGENT_MAX_REQUEST_BYTES
MAX_BATCH_BYTES = 512 * 1024
METADATA_MAX_AGE_MS = 10_000
"""How often an agent's consumer refreshes its topics' metadata. aiokafka rebalances when
a refresh shows a subscribed topic the last assignment left out (Faust's assignor skips a
topic the leader's metadata did not list, e.g. right after a broker restart); at
aiokafka's default of 5 minutes, such a worker was assigned nothing for minutes."""

StepFactory = Callable[[StepEnvironment], Step]


def _credentials(settings: Settings) -> faust.SASLCredentials | faust.SSLCredentials | None:
    config = aiokafka_config(settings)
    if settings.kafka_security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=config.get("sasl_plain_password"),
            mechanism=settings.kafka_sasl_mechanism or "PLAIN",
            ssl_context=config.get("ssl_context"),
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(config["ssl_context"])
    return None


def create_faust_app(
    settings: Settings,
    steps: Sequence[StepFactory],
    *,
    registry: SchemaSource | None = None,
    metrics: AgentMetrics | None = None,
    data_dir: Path | None = None,
    group: str = DEFAULT_GROUP,
) -> WorkerRuntime:
    """A Faust app running the steps ``steps`` make (``streamlearn.agents.STEPS``).

    ``group`` names the Faust app, hence its consumer group and its stores' changelog
    topics (both in the settings' namespace): every worker of one group must run the same
    steps (Faust's assignor hands any member any partition of the group's topics), so
    steps deployed as separate processes get a group each.
    """
    catalogue = TopicCatalogue.from_settings(settings)
    app_id = catalogue.namespace.group(group)
    datadir = data_dir or settings.data_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = agent_app(settings, app_id, datadir)
    runtime = WorkerRuntime(
        app=app,
        settings=settings,
        catalogue=catalogue,
        registry=registry or RegistryClient.for_settings(settings),
        metrics=metrics or AgentMetrics(),
    )
    environment = StepEnvironment(
        settings=settings,
        metrics=runtime.metrics,
        catalogue=catalogue,
        registry=runtime.registry,
        read_topic=lambda topic: read_to_end(settings, catalogue.topic(topic).name),
    )
    made = [make(environment) for make in steps]
    names = [step.name for step in made]
    if len(set(names)) != len(names):
        raise RuntimeConfigurationError(f"a step is listed twice: {names}")
    check_one_reader_per_topic((step.name, step.inputs) for step in made)
    # The group's description lists each member's client id: naming the settings there
    # lets a joining worker see that its group runs others (runtime/group_settings.py).
    app.conf.broker_client_id = agent_client_id(settings_fingerprint(settings, names))
    if metrics is None:  # a registry of its own: what this worker's agents count
        runtime.metrics.keep_only(names)
    for step in made:
        bind_step(runtime, step)
        runtime.steps.append(step)
    app.fetch_hold_ms = fetch_hold_ms(made, settings.agent_fetch_hold_ms)
    _declare_changelogs(app, settings)
    _export_partition_lags(runtime)
    return runtime


def agent_app(settings: Settings, app_id: str, datadir: Path) -> BatchingApp:
    """The Faust app of an agent worker named ``app_id`` (its consumer group), with no
    steps yet: the runtime's transport, producer batching and consumer settings."""
    servers = settings.kafka_bootstrap.split(",")
    return BatchingApp(
        app_id,
        broker=[f"kafka://{server}" for server in servers],
        # The `streamlearn` transport is Faust's aiokafka transport with the batch consumer
        # (runtime/faust_internals.py, registered as a `faust.transports` entry point).
        broker_consumer=[f"{BATCH_TRANSPORT_SCHEME}://{server}" for server in servers],
        broker_credentials=_credentials(settings),
        store=STORE_URL,
        processing_guarantee="at_least_once",
        topic_replication_factor=settings.topic_replication_factor or 1,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_REQUEST_BYTES,
        # The runtime fills record batches itself (runtime/outputs.py): larger batches
        # mean fewer produce requests per fetched batch.
        producer_max_batch_size=MAX_BATCH_BYTES,
        # Faust sends every message in its own request by default (linger 0): one broker
        # round trip per output and per table write. Lingering a few milliseconds batches
        # them (preprocess alone: 867 → 1,064 events/s, docs/agents.md "Performance").
        producer_linger=0.005,
        consumer_max_fetch_size=4 * 1024 * 1024,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        broker_session_timeout=settings.consumer_session_timeout_s,
        broker_heartbeat_interval=settings.consumer_session_timeout_s / 10,
        # Faust's default of one standby copy per table partition stays (with 0, a worker
        # running preprocess and sessionise alone never finished its first recovery).
        table_standby_replicas=1,
        web_enabled=False,
        datadir=str(datadir),
    )


def _export_partition_lags(runtime: WorkerRuntime) -> None:
    """Each input partition's position and lag on the worker's /metrics (runtime/lag.py)."""
    lags = PartitionLag(runtime.catalogue.namespace)
    runtime.metrics.registry.register(lags)
    app = runtime.app

    async def refresh() -> None:
        consumer = app.consumer
        if isinstance(consumer, BatchConsumer):
            lags.refresh(consumer)

    app.timer(REFRESH_S)(refresh)


def fetch_hold_ms(steps: Iterable[Step | type[Step]], setting: int | None = None) -> int | None:
    """How long the broker may hold the fetches of a worker running ``steps``: the
    ``setting`` (``agent_fetch_hold_ms``) when set, else the shortest of their
    :attr:`~streamlearn.runtime.step.Step.fetch_hold_ms`; None (no hold) when one of them
    has none, or for a hold that is not positive (held 0 ms for 1 MiB, an idle worker
    would fetch in a tight loop)."""
    if setting is not None:
        return setting if setting > 0 else None
    holds = [step.fetch_hold_ms for step in steps]
    if not holds or any(hold is None or hold <= 0 for hold in holds):
        return None
    return min(hold for hold in holds if hold is not None)


def check_one_reader_per_topic(steps: Iterable[tuple[str, Iterable[str]]]) -> None:
    """Refuse two steps of one worker, given as (name, input topics), that read one topic.

    One consumer group commits one offset per partition: two steps of one worker reading
    the same topic would commit for each other. Such steps run as workers of their own
    groups (`agents run --only NAME --group G`)."""
    readers: dict[str, str] = {}
    for name, inputs in steps:
        for topic in inputs:
            if topic in readers:
                raise RuntimeConfigurationError(
                    f"agents {readers[topic]} and {name} both read {topic}: run them "
                    f"as separate workers (`agents run --only {name} --group "
                    f"streamlearn-{name}`)"
                )
            readers[topic] = name


def _declare_changelogs(app: BatchingApp, settings: Settings) -> None:
    """Create the stores' changelog topics now, before the worker joins its group.

    Faust declares them itself at start, just before subscribing; when the group leader's
    metadata does not show a just-created changelog yet, its assignor leaves the topic
    out ("Ignoring missing topic") and table recovery waits for it until the next
    metadata refresh (:data:`METADATA_MAX_AGE_MS`; at aiokafka's default a fresh worker
    stalled about 5 minutes).
    """
    desired = [
        DesiredTopic(
            name=table.changelog_topic.get_topic_name(),
            partitions=table.partitions or app.conf.topic_partitions,
            replication_factor=settings.topic_replication_factor or 1,
            configs={"cleanup.policy": "compact", **CHANGELOG_SEGMENTS},
        )
        for table in app.tables.values()
    ]
    if desired:
        apply_topology(AdminClient(confluent_config(settings)), desired)
