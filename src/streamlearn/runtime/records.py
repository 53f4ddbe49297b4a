"""Records in and out of a step, the same whichever runtime runs it.

:class:`StepInputs` decodes a step's input records (a poison record becomes a rejection,
never an exception); :class:`StepOutputs` is the :class:`~streamlearn.runtime.step.Emit`
a step writes to: it encodes each output with its topic's serde, puts it in the partition
Kafka's default partitioner gives its key, and hands it to the runtime's sink (aiokafka
record batches in a worker, a list in the local runner). A runtime only decides where the
encoded records go and when.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import pairwise, repeat
from typing import Protocol

from streamlearn.kafka_clients import DEFAULT_MESSAGE_BYTES
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Record, Send, Value
from streamlearn.runtime.topic_writer import Sink, TopicWriter
from streamlearn.serde import AvroSerde, DecodeError, SchemaSource
from streamlearn.serde.decoding_process import (
    DecodingProcess,
    DecodingProcessError,
    Preparation,
    import_preparation,
)
from streamlearn.serde.wire import HEADER_SIZE, MAGIC_BYTE, framed_schema_id
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)

REJECTED = "events.rejected"
FIRST_CHUNK = 32
"""Records a long batch starts with, decoded in the step's process while the decoding
process decodes the next chunk: the fewer, the sooner both run."""
CHUNK = 256
"""Records per chunk the decoding process decodes (one pipe round trip each)."""
WallClock = Callable[[], int]
"""Wall time in epoch milliseconds (a virtual one in the local runner)."""


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
        self._writers_by_name = {writer.name: writer for writer in writers.values()}

    def to(self, topic: str) -> Send:
        send = self._senders.get(topic)
        if send is None:
            writer = self._writers.get(topic)
            if writer is None:
                raise RuntimeConfigurationError(
                    f"agent {self._agent} does not declare output topic {topic}"
                )
            send = self._senders[topic] = writer.sender(self._sink, self._too_large)
        return send

    def _too_large(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None
    ) -> None:
        """An output over its topic's limit: to ``events.rejected`` with its bytes (where
        they fit: that topic takes larger records), counted, and the step goes on."""
        limit = self._writers_by_name[topic].max_message_bytes
        self.reject_raw(
            topic, partition, -1, key, value, "output_too_large",
            f"{self._agent}'s record for {topic}[{partition}] is {len(value or b'')} bytes, "
            f"over the topic's limit of {limit} bytes (max.message.bytes): not sent",
            None,
        )  # fmt: skip

    def reject(self, record: Record, reason: str, detail: str) -> None:
        # A decoded record: its bytes name the writer's schema it was decoded with.
        self.reject_raw(record.topic, record.partition, record.offset, record.key, record.raw,
                        reason, detail, framed_schema_id(record.raw))  # fmt: skip

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
        """Send a record, bytes intact, to ``events.rejected`` and count it (an agent that
        publishes no rejections counts it as unread: the agent that routes it counts it as
        rejected, once)."""
        if not self._publish_rejections:
            self._metrics.unread.labels(agent=self._agent, reason=reason).inc()
            return
        self._metrics.rejected.labels(agent=self._agent, reason=reason).inc()
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
        encoded = writer.encode(record)
        if not writer.fits(key, encoded):
            # Not even events.rejected takes its bytes: said and counted, not kept.
            record["value"] = None
            record["detail"] = (
                f"{detail} (its {len(value or b'')} bytes: over {writer.name}'s limit too, "
                "not kept)"
            )
            encoded = writer.encode(record)
        self._sink(writer.name, where, key, encoded)


class InputMessage(Protocol):
    """A record as a consumer read it (Faust's messages, the local runner's)."""

    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> int | None: ...


class StepInputs:
    """Decodes the records of a step's input topics, in the step's own process or, for
    long batches of inputs with a :class:`~streamlearn.serde.avro.DecodingPlan`, a chunk
    at a time in a second process while the step handles the chunk before
    (:meth:`start_decoding_process`, :meth:`decoded_chunks`). An input with a preparation
    (``Step.input_preparations``) reaches the step as the preparation's result, wherever
    it was decoded."""

    def __init__(
        self,
        serdes: Mapping[str, AvroSerde],
        names: Mapping[str, str],
        preparations: Mapping[str, str] | None = None,
    ) -> None:
        self._serdes = dict(serdes)
        self._decode = {topic: serde.decode for topic, serde in serdes.items()}
        self._names = dict(names)
        self._preparations = dict(preparations or {})
        unknown = sorted(set(self._preparations) - set(serdes))
        if unknown:
            raise RuntimeConfigurationError(f"preparations of topics not read: {unknown}")
        self._prepare: dict[str, Preparation] = {}
        for topic, path in self._preparations.items():
            try:
                self._prepare[topic] = import_preparation(path)
            except (ImportError, ValueError) as exc:
                raise RuntimeConfigurationError(f"input {topic}: {exc}") from exc
        self._process: DecodingProcess | None = None

    def start_decoding_process(self) -> DecodingProcess | None:
        """Start decoding the inputs that have a plan in a second process (None: no
        input has one, so nothing is started)."""
        plans = {
            topic: plan
            for topic, serde in self._serdes.items()
            if (plan := serde.decoding_plan()) is not None
        }
        if plans and self._process is None:
            self._process = DecodingProcess(plans, preparations=self._preparations)
        return self._process

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
            self._process = None

    def unseen_writers(self, topic: str, messages: Sequence[InputMessage]) -> list[int]:
        """The writer schema ids of ``messages`` that the input's serde would have to ask
        the registry for (framed values only: the rest is rejected without asking)."""
        serde = self._serdes[topic]
        # The headers, deduplicated first: one slice per message is all a batch of known
        # writers costs.
        headers = {message.value[:HEADER_SIZE] for message in messages if message.value}
        return sorted(
            schema_id
            for header in headers
            if len(header) == HEADER_SIZE
            and header[0] == MAGIC_BYTE
            and not serde.knows_writer(schema_id := int.from_bytes(header[1:], "big"))
        )

    def look_up_writer(self, topic: str, schema_id: int) -> None:
        """Fetch writer ``schema_id`` of ``topic``'s records (see
        :meth:`AvroSerde.look_up_writer`)."""
        self._serdes[topic].look_up_writer(schema_id)

    def decoded_chunks(
        self,
        topic: str,
        partition: int,
        messages: Sequence[InputMessage],
        outputs: StepOutputs,
    ) -> Iterator[list[Record]]:
        """The records of ``messages`` as :meth:`decode_many` gives them, in chunks.

        With a decoding process and more than :data:`FIRST_CHUNK` messages, this process
        decodes the first few itself while the child decodes the next chunk, and each
        chunk the caller takes is handled while the child decodes the one after it. If
        the child fails, the rest is decoded here (logged once; the step goes on without
        it)."""
        process = self._process
        if process is None or len(messages) <= FIRST_CHUNK:
            yield self.decode_many(topic, partition, messages, outputs)
            return
        bounds = [0, *range(FIRST_CHUNK, len(messages), CHUNK), len(messages)]
        chunks = [messages[start:end] for start, end in pairwise(bounds)]
        for index, chunk in enumerate(chunks):
            values = None  # the first chunk: decoded here while the child takes the next
            try:
                if index == 0:
                    process.discard_pending()
                if index + 1 < len(chunks):
                    process.submit(topic, [message.value for message in chunks[index + 1]])
                if index > 0:
                    values = process.result()
                    if len(values) != len(chunk):  # never: but never lose a record
                        raise DecodingProcessError(f"{len(values)} answers to {len(chunk)}")
            except DecodingProcessError as exc:
                self._stop_process(exc)
                rest = [message for later in chunks[index:] for message in later]
                yield self.decode_many(topic, partition, rest, outputs)
                return
            yield self.decode_many(topic, partition, chunk, outputs, values)

    def _stop_process(self, error: DecodingProcessError) -> None:
        log.error("decoding in this process from now on: %s", error)
        self.close()

    def decode_many(
        self,
        topic: str,
        partition: int,
        messages: Iterable[InputMessage],
        outputs: StepOutputs,
        decoded: Sequence[Value | None] | None = None,
    ) -> list[Record]:
        """The records of ``messages`` (read from ``partition`` of ``topic``), in order; one
        that does not decode is rejected with the reason instead (poison never stops a
        step). ``decoded``: their records (prepared) where another process decoded them
        already, None where it left them to this one."""
        decode, name = self._decode[topic], self._names[topic]
        prepare = self._prepare.get(topic)
        records: list[Record] = []
        append = records.append
        values = repeat(None) if decoded is None else decoded
        for message, value in zip(messages, values, strict=False):
            offset, key, raw = message.offset, message.key, message.value
            if value is None:
                try:
                    value = decode(raw, topic=name, partition=partition, offset=offset)
                except DecodeError as exc:
                    outputs.reject_raw(
                        topic, partition, offset, key, raw, exc.reason, str(exc), exc.schema_id
                    )
                    continue
                if prepare is not None:
                    value = prepare(value)
            append(Record(topic, partition, offset, key, value, raw, message.timestamp))
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
    preparations: Mapping[str, str] | None = None,
    rejections: bool = True,
) -> tuple[StepInputs, dict[str, TopicWriter], dict[str, str]]:
    """The decoder of a step's inputs (``fields``: the only fields read of some of them;
    ``preparations``: what some of them are turned into once decoded),
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
    # In a fixed order: a fresh registry numbers schemas in the order they are registered,
    # and a set's order changes with the process's hash seed (the records' bytes hold the id).
    for topic in sorted(written):
        entry = catalogue.topic(topic)
        serde = entry.serde(registry)
        _ = serde.schema_id
        writers[topic] = TopicWriter(
            entry.name,
            serde,
            partitions_of(entry.name),
            entry.spec.max_message_bytes or DEFAULT_MESSAGE_BYTES,
        )
    names = {topic: catalogue.topic(topic).name for topic in {*inputs, *written}}
    return StepInputs(serdes, names, preparations), writers, names
