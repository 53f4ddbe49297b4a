"""Records in and out of a step, the same whichever runtime runs it.

:class:`StepInputs` decodes a step's input records (a poison record becomes a rejection,
never an exception); :class:`StepOutputs` is the :class:`~streamlearn.runtime.step.Emit`
a step writes to: it encodes each output with its topic's serde, puts it in the partition
Kafka's default partitioner gives its key, and hands it to the runtime's sink (aiokafka
record batches in a worker, a list in the local runner). A runtime only decides where the
encoded records go and when.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import fastavro

from streamlearn.kafka_clients import key_partition
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Record, Send, Value
from streamlearn.serde import AvroSerde, DecodeError, SchemaSource
from streamlearn.serde.compiled_encoder import compile_encoder
from streamlearn.serde.wire import frame
from streamlearn.topology.catalogue import TopicCatalogue

REJECTED = "events.rejected"
MAX_CACHED_KEYS = 200_000
"""Key → partition is cached per topic (a user's records repeat); bounded memory."""

Sink = Callable[[str, int, bytes | None, bytes], None]
"""``sink(topic name, partition, key, value)``: where a runtime takes encoded outputs."""
WallClock = Callable[[], int]
"""Wall time in epoch milliseconds (a virtual one in the local runner)."""


class KeyPartitioner:
    """Kafka's default partitioner for one topic's keys, with a bounded cache."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[bytes, int] = {}

    def __call__(self, key: bytes) -> int:
        partition = self._cache.get(key)
        if partition is None:
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
            partition = self._cache[key] = key_partition(key, self.partitions)
        return partition


class TopicWriter:
    """Encodes and partitions the records of one output topic.

    Records are encoded by an encoder compiled for the topic's schema when it has one
    (:mod:`streamlearn.serde.compiled_encoder`: the same bytes as fastavro, for plainly
    typed records), else, and for every record it declines, by the serde (fastavro),
    which also explains an invalid record."""

    def __init__(self, name: str, serde: AvroSerde, partitions: int) -> None:
        self.name = name
        self.serde = serde
        self.partition_of = KeyPartitioner(partitions)
        self.encode = self._compiled_or_serde()

    def _compiled_or_serde(self) -> Callable[[Value], bytes]:
        serde = self.serde
        compiled = compile_encoder(fastavro.parse_schema(serde.schema), frame(serde.schema_id, b""))
        if compiled is None:
            return serde.encode
        fallback = serde.encode

        def encode(value: Value) -> bytes:
            try:
                return compiled(value)
            except Exception:  # declined: the serde decides
                return fallback(value)

        return encode

    def sender(self, sink: Sink) -> Send:
        name, encode, partition_of = self.name, self.encode, self.partition_of

        def send(key: str, value: Value) -> None:
            key_bytes = key.encode()
            sink(name, partition_of(key_bytes), key_bytes, encode(value))

        return send


class StepOutputs:
    """The :class:`~streamlearn.runtime.step.Emit` of one batch or tick of one step."""

    def __init__(
        self,
        writers: Mapping[str, TopicWriter],
        sink: Sink,
        agent: str,
        metrics: AgentMetrics,
        clock: WallClock,
        source_names: Mapping[str, str],
        *,
        publish_rejections: bool = True,
    ) -> None:
        self._writers = writers
        self._publish_rejections = publish_rejections
        self._sink = sink
        self._agent = agent
        self._metrics = metrics
        self._clock = clock
        self._source_names = source_names
        self._senders: dict[str, Send] = {}

    def to(self, topic: str) -> Send:
        send = self._senders.get(topic)
        if send is None:
            writer = self._writers.get(topic)
            if writer is None:
                raise RuntimeConfigurationError(
                    f"agent {self._agent} does not declare output topic {topic}"
                )
            send = self._senders[topic] = writer.sender(self._sink)
        return send

    def reject(self, record: Record, reason: str, detail: str) -> None:
        self.reject_raw(record.topic, record.partition, record.offset, record.key, record.raw,
                        reason, detail, None)  # fmt: skip

    def reject_raw(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
        schema_id: int | None,
    ) -> None:
        """Send a record, bytes intact, to ``events.rejected`` and count it."""
        self._metrics.rejected.labels(agent=self._agent, reason=reason).inc()
        if not self._publish_rejections:
            return
        writer = self._writers[REJECTED]
        record = {
            "source_topic": self._source_names.get(topic, topic),
            "source_partition": partition,
            "source_offset": offset,
            "key": key,
            "value": value,
            "reason": reason,
            "detail": detail,
            "schema_id": schema_id,
            "agent": self._agent,
            "rejected_ts": datetime.fromtimestamp(self._clock() / 1000, UTC),
        }
        # Keyless records go to the partition number they came from: deterministic.
        where = (
            writer.partition_of(key)
            if key is not None
            else partition % writer.partition_of.partitions
        )
        self._sink(writer.name, where, key, writer.encode(record))


class InputMessage(Protocol):
    """A record as a consumer read it (Faust's messages, the local runner's)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


class StepInputs:
    """Decodes the records of a step's input topics."""

    def __init__(self, serdes: Mapping[str, AvroSerde], names: Mapping[str, str]) -> None:
        self._decode = {topic: serde.decode for topic, serde in serdes.items()}
        self._names = dict(names)

    def decode_many(
        self,
        topic: str,
        partition: int,
        messages: Iterable[InputMessage],
        outputs: StepOutputs,
    ) -> list[Record]:
        """The records of ``messages`` (read from ``partition`` of ``topic``), in order; one
        that does not decode is rejected with the reason instead (poison never stops a
        step)."""
        decode, name = self._decode[topic], self._names[topic]
        records: list[Record] = []
        append = records.append
        for message in messages:
            offset, key, raw = message.offset, message.key, message.value
            try:
                value = decode(raw, topic=name, partition=partition, offset=offset)
            except DecodeError as exc:
                outputs.reject_raw(
                    topic, partition, offset, key, raw, exc.reason, str(exc), exc.schema_id
                )
                continue
            append(Record(topic, partition, offset, key, value, raw))
        return records


def step_topics(
    catalogue: TopicCatalogue,
    registry: SchemaSource,
    inputs: Iterable[str],
    outputs: Iterable[str],
    partitions_of: Callable[[str], int],
    *,
    logical_types: bool = True,
    fields: Mapping[str, Collection[str]] | None = None,
    rejections: bool = True,
) -> tuple[StepInputs, dict[str, TopicWriter], dict[str, str]]:
    """The decoder of a step's inputs (``fields``: the only fields read of some of them),
    the writers of its outputs (with events.rejected when it publishes ``rejections``)
    and the Kafka name of every topic it touches, from the catalogue. Each serde's schema
    id is resolved now, at start-up, not on the first record. Only those topics are looked
    up: under ACLs a part may describe no other."""
    serdes = {}
    for topic in inputs:
        serdes[topic] = catalogue.topic(topic).serde(
            registry, logical_types=logical_types, fields=(fields or {}).get(topic)
        )
        _ = serdes[topic].schema_id
    written = {*outputs, *((REJECTED,) if rejections else ())}
    writers = {}
    for topic in written:
        entry = catalogue.topic(topic)
        serde = entry.serde(registry)
        _ = serde.schema_id
        writers[topic] = TopicWriter(entry.name, serde, partitions_of(entry.name))
    names = {topic: catalogue.topic(topic).name for topic in {*inputs, *written}}
    return StepInputs(serdes, names), writers, names
