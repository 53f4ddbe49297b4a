"""The Faust application factory: one app per worker process, built from settings.

No module-level app and no hard-coded broker: :func:`create_faust_app` builds an app for
the chosen agents, and several worker processes with the same settings share the work
through Kafka partitions (one consumer group, ``<prefix>streamlearn-agents``).

Processing guarantee: at-least-once, made exact by idempotency. Faust flushes every
output and table changelog before it commits the consumed offsets, so nothing is lost; a
worker killed mid-stream re-reads from its last commit. Each agent makes that replay
harmless: preprocess recognises a replayed record by its offset (and still drops true
duplicates), sessionise counts an event id once and re-emits identical sessions. Faust's
own exactly-once mode is not used: it sends outputs in the transaction of the *output*
partition, not of the input whose offset commits, so outputs and offsets are not atomic
(measured: a SIGKILL repeated outputs). See docs/agents.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from confluent_kafka.admin import AdminClient

from streamlearn.agents.batch_producer import OutputBatches
from streamlearn.agents.batches import BatchingApp
from streamlearn.agents.exceptions import AgentConfigurationError
from streamlearn.agents.metrics import AgentMetrics
from streamlearn.agents.preprocessing import Rejection, rejected_record
from streamlearn.kafka_clients import aiokafka_config, confluent_config
from streamlearn.serde import AvroSerde, DecodeError, RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology
from streamlearn.topology.plan import DesiredTopic

AGENT_NAMES = ("preprocess", "sessionise", "label-join", "learner")
DEFAULT_GROUP = "streamlearn-agents"
BATCH_TRANSPORT_SCHEME = "streamlearn"
# A rejected record carries the original bytes, which may be up to the source's limit;
# a snapshot on model.state may be several MB.
MAX_REQUEST_BYTES = 16 * 1024 * 1024  # model.state's max.message.bytes: snapshots of MBs
MAX_BATCH_BYTES = 512 * 1024


@dataclass
class AgentContext:
    """What every agent registration needs: the app, settings, registry and metrics."""

    app: BatchingApp
    settings: Settings
    registry: RegistryClient
    metrics: AgentMetrics

    def topic_name(self, name: str) -> str:
        return self.settings.topic_prefix + name

    def raw_topic(self, name: str) -> faust.TopicT:
        """Our topic ``name`` (prefixed) with bytes keys and values: agents do their own Avro."""
        return self.app.topic(self.topic_name(name), key_serializer="raw", value_serializer="raw")

    def serde(self, name: str, schema: str) -> AvroSerde:
        """The serde of topic ``name``'s values, its schema id resolved now: at start-up,
        not on the first record inside the event loop."""
        serde = AvroSerde.for_topic(self.registry, self.topic_name(name), schema)
        _ = serde.schema_id
        return serde

    def rejecter(self, agent: str) -> Callable[[Any, Rejection, OutputBatches], Awaitable[None]]:
        """``await reject(message, rejection, outputs)``: the record, whole, to
        ``events.rejected`` with the batch's outputs (counting it is the deciding step's
        job, so it is counted once)."""
        topic = self.topic_name("events.rejected")
        serde = self.serde("events.rejected", "RejectedRecord")

        async def reject(message: Any, rejection: Rejection, outputs: OutputBatches) -> None:
            record = rejected_record(
                rejection, message.topic, message.partition, message.offset,
                message.key, message.value, agent,
            )  # fmt: skip
            add = await outputs.to_topic(topic)
            add(message.key, serde.encode(record))

        return reject

    def decoder(
        self, agent: str
    ) -> Callable[[AvroSerde, Any, OutputBatches], Awaitable[dict[str, Any] | None]]:
        """``await decode(serde, message, outputs)``: the record, or None after counting it
        and sending it to ``events.rejected`` with the reason (a poison record never stops
        an agent)."""
        reject = self.rejecter(agent)
        rejected = self.metrics.rejected

        async def decode(
            serde: AvroSerde, message: Any, outputs: OutputBatches
        ) -> dict[str, Any] | None:
            try:
                return serde.decode(
                    message.value, topic=message.topic, partition=message.partition,
                    offset=message.offset,
                )  # fmt: skip
            except DecodeError as exc:
                rejected.labels(agent=agent, reason=exc.reason).inc()
                await reject(message, Rejection(exc.reason, str(exc), exc.schema_id), outputs)
                return None

        return decode

    def partitions_of(self, name: str) -> int:
        """Partition count of an existing topic (tables must match their source's)."""
        topic = self.topic_name(name)
        metadata = AdminClient(confluent_config(self.settings)).list_topics(topic, timeout=30)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise AgentConfigurationError(
                f"topic {topic} does not exist: run `streamlearn topics apply` first"
            )
        return len(found.partitions)


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
    agents: tuple[str, ...] = AGENT_NAMES,
    *,
    registry: RegistryClient | None = None,
    metrics: AgentMetrics | None = None,
    data_dir: Path | None = None,
    group: str = DEFAULT_GROUP,
) -> tuple[BatchingApp, AgentContext]:
    """A Faust app running ``agents``; returns it with the context the agents share.

    ``group`` names the Faust app, hence its consumer group and its tables' changelog
    topics: every worker of one group must run the same agents (Faust's assignor hands
    any member any partition of the group's topics), so agents deployed as separate
    processes get a group each.
    """
    unknown = sorted(set(agents) - set(AGENT_NAMES))
    if unknown:
        raise AgentConfigurationError(f"unknown agents {unknown}; known: {list(AGENT_NAMES)}")
    app_id = f"{settings.topic_prefix}{group}"
    datadir = data_dir or settings.data_dir / "faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    servers = settings.kafka_bootstrap.split(",")
    app = BatchingApp(
        app_id,
        broker=[f"kafka://{server}" for server in servers],
        # The `streamlearn` transport is Faust's aiokafka transport with our batch consumer
        # (agents/batch_consumer.py, registered as a `faust.transports` entry point).
        broker_consumer=[f"{BATCH_TRANSPORT_SCHEME}://{server}" for server in servers],
        broker_credentials=_credentials(settings),
        store="memory://",
        processing_guarantee="at_least_once",
        topic_replication_factor=settings.topic_replication_factor or 1,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_REQUEST_BYTES,
        # Batch agents fill record batches themselves (agents/batch_producer.py): larger
        # batches mean fewer produce requests per fetched batch.
        producer_max_batch_size=MAX_BATCH_BYTES,
        # Faust sends every message in its own request by default (linger 0): one broker
        # round trip per output and per table write. Lingering a few milliseconds batches
        # them (preprocess alone: 867 → 1,064 events/s, docs/agents.md "Performance").
        producer_linger=0.005,
        consumer_max_fetch_size=4 * 1024 * 1024,
        broker_session_timeout=settings.consumer_session_timeout_s,
        broker_heartbeat_interval=settings.consumer_session_timeout_s / 10,
        # Faust's default of one standby copy per table partition stays (with 0, a worker
        # running preprocess and sessionise alone never finished its first recovery).
        # Agents that scan their state act only on partitions they own: sessionise sweeps
        # its own partitions, label-join drops other partitions' keys before indexing.
        table_standby_replicas=1,
        web_enabled=False,
        datadir=str(datadir),
    )
    context = AgentContext(
        app=app,
        settings=settings,
        registry=registry or RegistryClient(settings.schema_registry_url),
        metrics=metrics or AgentMetrics(),
    )
    from streamlearn.agents import label_join, learner, preprocess, sessionise

    registrations = {
        "preprocess": preprocess.register,
        "sessionise": sessionise.register,
        "label-join": label_join.register,
        "learner": learner.register,
    }
    for name in agents:
        registrations[name](context)
    _declare_changelogs(app, settings)
    return app, context


def _declare_changelogs(app: BatchingApp, settings: Settings) -> None:
    """Create the tables' changelog topics now, before the worker joins its group.

    Faust declares them itself at start, just before subscribing; when the group leader's
    metadata does not show a just-created changelog yet, its assignor leaves the topic
    out ("Ignoring missing topic") and table recovery waits for it until the next
    metadata refresh, minutes later (measured: a fresh worker stalled about 5 minutes).
    """
    desired = [
        DesiredTopic(
            name=table.changelog_topic.get_topic_name(),
            partitions=table.partitions or app.conf.topic_partitions,
            replication_factor=settings.topic_replication_factor or 1,
            configs={"cleanup.policy": "compact"},
        )
        for table in app.tables.values()
    ]
    if desired:
        apply_topology(AdminClient(confluent_config(settings)), desired)
