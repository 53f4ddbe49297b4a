"""The step contract: what an agent is, whatever runs it.

An agent is a :class:`Step`: plain Python over plain data, knowing nothing of Faust or of
Kafka clients. For one input partition at a time it takes a batch of decoded records,
reads and writes its state (mappings from :class:`Stores`, one per partition) and sends
outputs through :class:`Emit`. Whoever runs it (the Faust runtime in a worker, the
in-memory :class:`~streamlearn.runtime.local.LocalRunner` in tests, replays and the
learning lab) then, in one place and in this order, delivers the outputs, writes the
state changes to the changelog and acknowledges the input offsets. A crash between any
two of those re-runs the batch from the state last written: a step must therefore emit
the same outputs for the same input and state (:mod:`streamlearn.runtime.checks` tests
that of every step).

State is partition-scoped: what a step writes while handling partition ``p`` belongs to
``p``, is written to changelog partition ``p``, and moves with ``p`` to whichever worker
owns it next. Values are JSON data (dicts, lists, str, numbers, bool, None): they are
stored in changelogs as JSON and come back from a restore as JSON gives them (lists, not
tuples).

Time: ``process`` gets no clock; event time comes from the records
(:class:`~streamlearn.runtime.event_time.EventClock`). ``tick`` is called every
``tick_every_s`` with the wall clock and is where a step may close what a quiet live
stream leaves open; its outputs and state go through the same checkpoint (without
offsets to acknowledge).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol

Value = dict[str, Any]
Send = Callable[[str, Value | None], None]
"""``send(key, value)``: one output record, keyed by a string (its UTF-8 bytes in Kafka);
a value of None is a tombstone (a compacted topic then drops the key's records)."""


class Record(NamedTuple):
    """One decoded input record (a named tuple: immutable, and built for every record read
    at a third of a frozen dataclass's cost)."""

    topic: str
    """The topic's name in the topology (without namespace)."""
    partition: int
    offset: int
    key: bytes | None
    value: Any
    """The decoded record (a dict), or what the step's preparation of its input made of
    it (:attr:`Step.input_preparations`)."""
    raw: bytes | None
    """The value's bytes as read (what a rejection keeps)."""
    timestamp_ms: int | None = None
    """The record's Kafka timestamp (epoch ms): the broker's clock on a topic stamped at
    append (``message.timestamp.type=LogAppendTime``), else the producer's."""


class Emit(Protocol):
    """Where a step sends its outputs (delivered after the step returns)."""

    def to(self, topic: str) -> Send:
        """The sender of topic ``topic`` (a topology name the step lists in ``outputs``)."""
        ...

    def reject(self, record: Record, reason: str, detail: str) -> None:
        """Send ``record``, bytes intact, to ``events.rejected`` with the reason (the
        runtime counts it)."""
        ...


class Stores(Protocol):
    """The state of a step's partitions: one mapping per (store, partition)."""

    def of(self, store: str, partition: int) -> MutableMapping[str, Any]:
        """Store ``store``'s mapping for ``partition`` (a store the step lists in
        ``stores``). Changes are tracked by key: a value changed in place must be assigned
        again (``mapping[key] = value``) to be written."""
        ...

    def partitions(self) -> frozenset[int]:
        """The partitions whose state is here (those this worker owns)."""
        ...

    @property
    def count(self) -> int:
        """How many partitions the step's inputs have."""
        ...


FETCH_HOLD_MS = 100
"""The pipeline's agents' :attr:`Step.fetch_hold_ms` (preprocess, sessionise, label-join,
the learner): a tenth of a second more per stage, for batches of tens of records where a
caught-up stream gave one or two. In ``up --simulate``, with the monitor's 500 ms, the
agents and the broker together took 34 % of a core where they took 92-95 %, and
everything 53-54 % where it took 113-117 % (docs/agents.md, "The agents' batches")."""


class Step(ABC):
    """One agent. Subclasses set the class attributes and implement :meth:`process`."""

    name: ClassVar[str]
    """The agent's name (``agents run --only NAME``, metrics' ``agent`` label)."""
    inputs: ClassVar[tuple[str, ...]]
    """Topics read, co-partitioned: partition ``p`` of each is handled with state ``p``."""
    outputs: ClassVar[tuple[str, ...]]
    """Topics written (``events.rejected`` is implied when :attr:`publishes_rejections`)."""
    stores: ClassVar[tuple[str, ...]] = ()
    """Names of the step's partition-scoped state stores."""
    tick_every_s: ClassVar[float | None] = None
    """How often :meth:`tick` runs (None: never)."""
    plain_inputs: ClassVar[bool] = False
    """Whether inputs are decoded without Avro's logical types: timestamps as the epoch
    milliseconds they are on the wire, UUIDs as strings. Converting every timestamp to a
    ``datetime`` is a large part of decoding; a step that only computes with the numbers
    says True (the values are the same in every runtime, so results do not change)."""
    input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    """Per input topic, the only fields the step reads, when it reads few of many: its
    records hold those (in schema order) and the others are read past, not decoded (Avro's
    own reading of a record into a schema with fewer fields). A name the topic's schema
    does not have stops the worker at start-up; a field read but not listed is a KeyError
    (a test of the step with and without its projection catches it)."""
    input_preparations: ClassVar[Mapping[str, str]] = {}
    """Per input topic, a function (``package.module:function``) of a decoded record whose
    result the step gets as :attr:`Record.value` instead of the record: what the step
    would otherwise compute first thing from every record. It runs where the record is
    decoded, in the decoding process when the step has one (so it runs on the second core
    too; it must then return plain data: tuples, lists, dicts, str, numbers, None) and in
    the step's process otherwise, the same function either way. Named, not passed: the
    decoding process imports it."""
    publishes_rejections: ClassVar[bool] = True
    """Whether undecodable input goes to ``events.rejected`` (always counted). A step that
    only observes topics another agent reads (and rejects from) says False: one record,
    one rejection."""
    fetch_hold_ms: ClassVar[int | None] = None
    """How long the broker may hold the step's fetches to gather a batch (up to
    ``FETCH_HOLD_MIN_BYTES``; None: a fetch returns as soon as anything is there). For a
    step whose outputs need no sub-second latency and whose work per batch is small
    beside the batch's fixed cost: caught up, a stream arrives a record or two at a time,
    and every batch pays the runtime's bookkeeping, a state write and a commit. A worker
    running several steps holds its fetches only when each of them lets it, for the
    shortest of their holds (its one consumer fetches for all)."""
    decodes_in_second_process: ClassVar[bool] = False
    """Whether a worker decodes the step's long batches in a second process while the
    step handles the records before them (:mod:`streamlearn.serde.decoding_process`),
    for plain inputs, with a second core and ``STREAMLEARN_AGENT_DECODING_PROCESS`` on.
    For steps whose decoding is a large share of their work (preprocess, sessionise, the
    learner); a batch then reaches :meth:`process` in several calls, which it must take as
    it takes smaller batches."""

    def bind(self, state: Stores, wall_clock: Callable[[], int]) -> None:
        """Called once, before anything else, with the step's state and the wall clock
        (epoch ms; virtual in the local runner) for processing-time fields."""
        self.state = state
        self.wall_clock = wall_clock

    @abstractmethod
    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        """Handle one partition's batch of records, in offset order (one input topic per
        batch)."""

    def tick(  # noqa: B027
        self, partition: int, now_ms: int, read_ms: int | None, emit: Emit
    ) -> None:
        """Wall-clock work for an owned partition at wall time ``now_ms``; ``read_ms`` is
        when its last batch was read, or when the worker found the partition it took over
        read to its end (None: neither yet). See
        :class:`~streamlearn.runtime.event_time.EventClock`."""

    def opened(self, partition: int) -> None:  # noqa: B027
        """``partition``'s state is complete here (restored), before its first batch or
        tick: rebuild what the step keeps in memory about it."""

    def closing(self, partition: int, emit: Emit) -> None:  # noqa: B027
        """``partition`` leaves this worker (rebalance or stop): its last outputs go out
        through ``emit``; then forget what is kept in memory about it."""

    def resume_offset(self, topic: str, partition: int) -> int | None:
        """The first offset of ``topic``/``partition`` the step's state has not taken in,
        when the state rather than the committed offset says so (None: no opinion). Asked
        before each batch: a batch that starts beyond it makes the runtime seek back to it
        (unless retention removed those records); earlier records are the step's to skip."""
        return None

    def read_through(self, topic: str, partition: int, next_offset: int) -> None:  # noqa: B027
        """Every record of ``topic``/``partition`` before ``next_offset`` was read: handed
        to :meth:`process` or, not decoding, rejected by the runtime (such a record never
        reaches the step). Called after each batch. A step with a :meth:`resume_offset`
        counts those records as taken in here, or it asks for them again."""
