"""The registry's storage: the compacted ``_schemas`` topic, read from the beginning and tailed.

Each replica consumes the whole topic (no consumer group: one partition, assigned) and
applies every record to its :class:`RegistryState`. A write is produced with acks=all and
only counts once this replica has read it back, so a client that got an id from any
replica finds it on that replica right away, and on every other once it has caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streamlearn.exceptions import ConfigurationError
from streamlearn.kafka_clients import aiokafka_config, confluent_config
from streamlearn.registry.exceptions import store_error, store_timeout
from streamlearn.registry.state import RegistryState
from streamlearn.runtime.kafka_wait import saying_while_waiting_for_kafka
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10.0
"""How long a write waits for Kafka's confirmation and for this replica to read it back
(one record, acks=all: milliseconds when the broker is there; Confluent's registry waits
500 ms). Longer only delays the error its client retries on (50002)."""


def ensure_topic(settings: Settings, topic: str) -> None:
    """Create the compacted single-partition topic if it does not exist, or check the one
    that does (blocking): :class:`ConfigurationError` for one that would lose the state."""
    admin = AdminClient(confluent_config(settings))
    existing = admin.list_topics(timeout=30).topics.get(topic)
    if existing is not None:
        _check_topic(admin, topic, len(existing.partitions))
        return
    spec = NewTopic(
        topic,
        num_partitions=1,
        replication_factor=settings.topic_replication_factor or 1,
        config={"cleanup.policy": "compact", "retention.ms": "-1"},
    )
    try:
        admin.create_topics([spec])[topic].result(timeout=30)
    except KafkaException as exc:
        if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
            raise


def _check_topic(admin: AdminClient, topic: str, partitions: int) -> None:
    """Refuse a registry topic made otherwise (by hand, another tool): with more than one
    partition the registry reads only partition 0, and one the broker deletes from (any
    cleanup policy but ``compact``) loses the schemas past its retention, after which
    their ids are unknown to every consumer and can be handed out again. Confluent's
    registry refuses both at start too."""
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    policy = configs["cleanup.policy"].value if "cleanup.policy" in configs else "delete"
    problems = []
    if partitions != 1:
        problems.append(f"has {partitions} partitions (the registry reads only partition 0)")
    if {part.strip() for part in str(policy).split(",")} != {"compact"}:
        problems.append(
            f"has cleanup.policy={policy} (the broker would delete schemas past its retention)"
        )
    if problems:
        raise ConfigurationError(
            f"the registry's topic {topic} " + " and ".join(problems) + ": its state needs a "
            "compacted topic of one partition. Set cleanup.policy=compact (kafka-configs.sh "
            "--alter), or, if it holds nothing yet, delete it and let the registry create it"
        )


class SchemaLog:
    """Reads and writes the registry's topic, keeping :attr:`state` current."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.state = RegistryState()
        self._partition = TopicPartition(topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._tail: asyncio.Task[None] | None = None
        self._position = 0
        self._advanced = asyncio.Condition()
        self._failure: BaseException | None = None

    async def start(self, catch_up_timeout_s: float = 60.0) -> None:
        # Its first request to Kafka waits up to 30 s: a broker away was that long silent.
        with saying_while_waiting_for_kafka(self.settings.kafka_bootstrap, log.warning):
            await asyncio.to_thread(ensure_topic, self.settings, self.topic)
        self._consumer = AIOKafkaConsumer(
            **aiokafka_config(self.settings), enable_auto_commit=False, group_id=None
        )
        await self._consumer.start()
        self._consumer.assign([self._partition])
        await self._consumer.seek_to_beginning(self._partition)
        self._producer = AIOKafkaProducer(
            **aiokafka_config(self.settings), acks="all", enable_idempotence=True
        )
        await self._producer.start()
        end = (await self._consumer.end_offsets([self._partition]))[self._partition]
        self._tail = asyncio.create_task(self._follow(), name=f"follow {self.topic}")
        await self._wait_position(end, catch_up_timeout_s)
        log.info("registry state rebuilt from %s up to offset %d", self.topic, end)

    @property
    def failure(self) -> BaseException | None:
        """Why following the topic stopped, if it did (the replica then serves stale state)."""
        return self._failure

    async def stop(self) -> None:
        if self._tail is not None:
            self._tail.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail
        if self._producer is not None:
            await self._producer.stop()
        if self._consumer is not None:
            await self._consumer.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        try:
            while True:
                batches = await self._consumer.getmany(self._partition, timeout_ms=500)
                for record in batches.get(self._partition, []):
                    self.state.apply(record.key, record.value)
                position = await self._consumer.position(self._partition)
                if position != self._position:
                    async with self._advanced:
                        self._position = position
                        self._advanced.notify_all()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("following %s failed", self.topic)
            async with self._advanced:
                self._failure = exc
                self._advanced.notify_all()
            raise

    async def _wait_position(self, target: int, timeout_s: float) -> None:
        async def reached() -> None:
            async with self._advanced:
                await self._advanced.wait_for(
                    lambda: self._position >= target or self._failure is not None
                )
            if self._failure is not None:
                raise store_error(f"reading {self.topic} failed: {self._failure}")

        try:
            await asyncio.wait_for(reached(), timeout_s)
        except TimeoutError as exc:
            raise store_timeout(
                f"{self.topic} not read up to offset {target} within {timeout_s:.0f}s"
            ) from exc

    async def write(self, records: list[tuple[bytes, bytes | None]]) -> None:
        """Produce records in order and wait until this replica has applied them."""
        if self._producer is None:
            raise store_error("the registry is not started")
        last_offset = -1
        try:
            for key, value in records:
                metadata = await asyncio.wait_for(
                    self._producer.send_and_wait(self.topic, key=key, value=value, partition=0),
                    WRITE_TIMEOUT_S,
                )
                last_offset = metadata.offset
        except TimeoutError as exc:
            # The producer keeps the record and sends it once the broker answers: not a
            # failed write, an unconfirmed one. Every write is one a client may repeat (a
            # schema registered again gets its id; a level set again is that level).
            raise store_timeout(
                f"writing to {self.topic}: Kafka did not confirm within {WRITE_TIMEOUT_S:.0f}s "
                "(is the registry's broker up?); the write may still be applied once it "
                "answers, and repeating the request is safe"
            ) from exc
        except Exception as exc:
            raise store_error(f"writing to {self.topic}: {exc}") from exc
        await self._wait_position(last_offset + 1, WRITE_TIMEOUT_S)
