"""Everything of the runtime that touches Faust's private members, and the guard on them.

**The batch consumer.** Faust delivers records one at a time: for every record its
consumer awaits ``wait_first(callback(message), suspend_flow.wait())``, creating several
tasks per event, and the record then travels through a channel queue into the agent's
stream. That machinery, not the work, dominated the ingest agents' profile (docs/agents.md,
"Performance"). :class:`BatchConsumer` keeps everything else of Faust's aiokafka consumer
(group membership, assignor, table recovery, flow control, commits on revoke and
shutdown) and replaces only the drain loop: records of topics that have a batch handler
(:meth:`streamlearn.runtime.faust_app.BatchingApp.batch_handler_for`) are handed over one
partition batch at a time; records of every other topic (table changelogs) take Faust's
own per-message path unchanged.

While a batch is processed the next fetch is already in flight. A batch is acknowledged in
Faust's bookkeeping only after its checkpoint completed (outputs delivered, then state
written), so Faust's commit (which flushes the producer first) never covers an
unprocessed or undelivered record. A fetch that began before a rebalance is discarded.
Fetch positions are not trusted to say what was processed: a batch partition's records
are handed over only as the continuation of what was handed (or of where the consumer was
sent), and a fetch that skipped ahead sends the consumer back
(:mod:`streamlearn.runtime.read_positions`).

Selected through Faust's transport configuration: ``broker_consumer`` URLs with the
``streamlearn://`` scheme resolve, through the ``faust.transports`` entry point declared
in pyproject.toml, to :class:`BatchTransport`.

**The guard** (:mod:`~streamlearn.runtime.faust_guard`). Private members change without
notice between Faust releases, so every one used here is listed there and checked: the
methods on the classes when an app is built, the attributes on the live consumer, fetcher
and producer when they are first used. A unit test checks that the lists are exactly what
this module uses and that the guard fails for each member it lists. An upgrade of
faust-streaming (pinned in pyproject.toml) that changes one fails loudly instead of
silently. No other module of streamlearn touches a private member of Faust.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import monotonic
from typing import Any, Protocol

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

from streamlearn.runtime.commit_pacing import CaughtUpCommits
from streamlearn.runtime.exceptions import FaustMismatchError
from streamlearn.runtime.faust_guard import attribute_problems, raise_if
from streamlearn.runtime.read_positions import ReadPositions

CONSUMER_THREAD_STOP_S = 15.0
"""How long a stopping worker waits for its consumer thread: with the broker up it stops in
a second or two (offsets are committed before, by the consumer)."""
FETCH_TIMEOUT_S = 1.0
FETCH_MAX_WAIT_MS = 200
"""How long the broker may hold a fetch that finds nothing new (Faust asks aiokafka for
1,500 ms). aiokafka keeps one fetch in flight per broker: a fetch sent while a busy
partition still had records to hand over covers only the idle partitions, and the busy one
is not fetched again until that fetch returns. With 1,500 ms the learner agent, reading
one partition of three, stood idle ~0.6 s about once per 100,000 examples."""
FETCH_HOLD_MIN_BYTES = 1024 * 1024
"""What a held fetch gathers at most before its hold ends (``fetch.min.bytes``): for a worker
whose steps let the broker hold their fetches (``Step.fetch_hold_ms``)."""

# Pending checkpoints of a batch; the batch is acknowledged once all completed. A handler
# returning None instead leaves its batch unacknowledged and unread (it seeked).
Deliveries = Sequence[Awaitable[Any]]
BatchHandler = Callable[[TP, list[Any]], Awaitable[Deliveries | None]]
"""``handler(tp, records)``: aiokafka's records of one partition, in offset order."""


def aiokafka_producer(producer: Any) -> Any:
    """The aiokafka producer inside Faust's producer (started on first use)."""
    if not isinstance(producer, faust_aiokafka.Producer):
        raise FaustMismatchError(
            f"batch agents need Faust's aiokafka producer, not {type(producer).__name__}"
        )
    return producer._ensure_producer()


class BatchRouting(Protocol):
    """What the consumer needs from the app: the batch handler of a topic, if any."""

    def batch_handler_for(self, topic: str) -> BatchHandler | None: ...

    async def batches_revoked(self, revoked: set[TP]) -> None: ...


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with per-partition batch delivery for batch topics."""

    _batches_in_flight: set[asyncio.Future[None]]
    _batch_failure: BaseException | None = None
    _positions: ReadPositions[TP]
    _caught_up: CaughtUpCommits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # mode waits up to 60 s for a service to stop; aiokafka's consumer thread dies while
        # stopping when the broker is away (its fetcher's close raises CancelledError), so
        # a SIGTERM then took 62 s, past a Kubernetes pod's 60 s grace.
        raise_if(attribute_problems("started consumer", self))
        self._thread.shutdown_timeout = CONSUMER_THREAD_STOP_S

    def on_init(self) -> None:
        super().on_init()
        self._batches_in_flight = set()
        self._batch_failure = None
        self._positions = ReadPositions()
        self._caught_up = CaughtUpCommits(self._commit_caught_up)
        raise_if(attribute_problems("consumer", self))

    async def on_stop(self) -> None:
        await self._caught_up.stop()
        await super().on_stop()

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._positions.start_at(TP(partition.topic, partition.partition), offset)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Faust's seek after a rebalance (and on its own dropped fetches). aiokafka leaves
        a partition without a committed offset where it was, possibly past fetched records
        that were dropped (a fetch returned during recovery): a batch partition is sent
        back to offset 0 then, and its records are handed over from there
        (``auto.offset.reset=earliest``; retention's hole is admitted as a gap). Admission
        alone would send it back only once later records arrived, and when the dropped
        records were all the partition had, none did: it was never read."""
        committed = await super().seek_to_committed()
        routing = self._routing()
        for tp, offset in committed.items():
            partition = TP(tp.topic, tp.partition)
            if offset is not None and offset >= 0:
                self._positions.start_at(partition, offset)
            elif routing is not None and routing.batch_handler_for(tp.topic) is not None:
                await self.seek(partition, 0)  # also starts the positions there
            else:
                self._positions.start_at(partition, 0)
        return committed

    def _routing(self) -> BatchRouting | None:
        app: Any = self.app
        return app if callable(getattr(app, "batch_handler_for", None)) else None

    async def _drain_messages(self, fetcher: Any) -> None:
        routing = self._routing()
        if routing is None:
            await super()._drain_messages(fetcher)
            return
        raise_if(attribute_problems("fetcher", fetcher))
        self._set_fetch_wait()
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        next_fetch: asyncio.Task[Any] | None = None
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                if self._batch_failure is not None:
                    raise self._batch_failure
                fetch = next_fetch or asyncio.ensure_future(self._fetch())
                next_fetch = None
                fetched = await fetch
                await self.sleep(0)
                if fetched is None or self.should_stop:
                    continue
                records, active_partitions, generation = fetched
                # The next fetch runs in the consumer thread while this one is processed.
                next_fetch = asyncio.ensure_future(self._fetch())
                await self._process_fetch(routing, records, active_partitions, generation)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Batch drain raised: %r", exc)
            raise
        finally:
            if next_fetch is not None:
                next_fetch.cancel()

    def _set_fetch_wait(self) -> None:
        """How long the broker may hold a fetch, on aiokafka's fetcher (read for every
        fetch it sends; ints set from this thread are seen whole by the consumer thread):
        :data:`FETCH_MAX_WAIT_MS` when it finds nothing new; or, when the worker's steps
        let it (``BatchingApp.fetch_hold_ms``), that long or until
        :data:`FETCH_HOLD_MIN_BYTES` are there."""
        raise_if(attribute_problems("started consumer", self))
        consumer = self._thread._ensure_consumer()
        raise_if(attribute_problems("aiokafka consumer", consumer))
        fetcher = consumer._fetcher
        raise_if(attribute_problems("aiokafka fetcher", fetcher))
        hold_ms = getattr(self.app, "fetch_hold_ms", None)
        if hold_ms is None:
            fetcher._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        else:
            # The wait first: a request built between the two writes is held at most this
            # long (the other way round, it could be held Faust's 1,500 ms for 1 MiB).
            fetcher._fetch_max_wait_ms = hold_ms
            fetcher._fetch_min_bytes = FETCH_HOLD_MIN_BYTES

    async def _fetch(self) -> tuple[Mapping[TP, list[Any]], set[TP] | None, int] | None:
        # The generation the fetch began in: records fetched while a rebalance completed
        # may be of the old assignment's positions.
        generation = self.app.consumer_generation_id
        records, active_partitions = await self._wait_next_records(FETCH_TIMEOUT_S)
        if records is None or self.should_stop:
            return None
        return records, active_partitions, generation

    async def _process_fetch(
        self,
        routing: BatchRouting,
        records: Mapping[TP, list[Any]],
        active_partitions: set[TP] | None,
        generation: int,
    ) -> None:
        for tp, tp_records in records.items():
            if self.app.consumer_generation_id != generation or not self.flow_active:
                # A rebalance began or happened while this fetch was in flight: its records
                # may be of partitions we no longer own. Drop them.
                await self._rewind(records, routing)
                return
            if not (
                active_partitions is None
                or tp in active_partitions
                or tp in self._buffered_partitions
            ):
                continue
            handler = routing.batch_handler_for(tp.topic)
            if handler is None:
                await self._deliver_one_by_one(tp, tp_records)
            else:
                await self._deliver_batch(handler, tp, tp_records, generation)

    async def _rewind(
        self, dropped: Mapping[TP, list[Any]], routing: BatchRouting | None = None
    ) -> None:
        """Send the consumer back to the first dropped record of each batch partition it
        still knows where to read (the others are sought after the rebalance), and of each
        other partition it still owns (per ``routing``; None: all are batch partitions): a
        changelog that table recovery sought while this fetch was in flight would otherwise
        be read on from past the dropped records, which recovery then waits for forever.
        Faust's read offsets are left as they are there, so what was handed over before is
        not handed over again."""
        assignment = self.assignment()
        for tp, records in dropped.items():
            if tp not in assignment:
                continue
            batch = routing is None or routing.batch_handler_for(tp.topic) is not None
            start = self._positions.next(tp) if batch else records[0].offset
            if start is None:
                continue
            try:
                await (self.seek(tp, start) if batch else self._seek(tp, start))
            except Exception as exc:
                # Mid-rebalance the assignment can change under the seek; the seek after
                # the rebalance sets the position then, and admission checks it.
                self.log.debug("seek of %s back to %d deferred: %r", tp, start, exc)

    async def _unread(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records not read before (as Faust's drain: a seek may re-fetch some) and
        gap bookkeeping for offsets the broker skipped (e.g. transaction markers)."""
        read_offset = self._read_offset.get(tp)
        if read_offset is not None:
            records = [record for record in records if record.offset >= read_offset]
        skipped = bool(records and read_offset and records[0].offset - read_offset > 1)
        if skipped and read_offset and self.app.topics.acks_enabled_for(tp.topic):
            await self._add_gap(tp, read_offset + 1, records[0].offset)
        return records

    async def _maybe_commit(self) -> None:
        commit_every = self._commit_every
        if commit_every is not None and self._n_acked >= commit_every:
            self._n_acked = 0
            await self.commit()

    async def _deliver_one_by_one(self, tp: TP, records: list[Any]) -> None:
        """Faust's own path for topics without a batch handler (changelogs, agents)."""
        for record in await self._unread(tp, records):
            await self._maybe_commit()
            await self.wait_first(
                self.callback(self._to_message(tp, record)), self.suspend_flow.wait()
            )
            self._read_offset[tp] = record.offset

    async def _admitted(self, tp: TP, records: list[Any]) -> list[Any]:
        """The records to hand over: the continuation of what was handed (see
        :mod:`~streamlearn.runtime.read_positions`); none, and a seek back, when the
        fetch skipped records."""
        admission = self._positions.admit(tp, records[0].offset, records[-1].offset)
        if admission.rewind is not None:
            # Expected after any seek made while a fetch was in flight: not a problem.
            self.log.info(
                "%s: fetched records start at %d, the next to hand over is %d: rewinding",
                tp, records[0].offset, admission.rewind,
            )  # fmt: skip
            await self.seek(tp, admission.rewind)
            return []
        if admission.gap is not None and self.app.topics.acks_enabled_for(tp.topic):
            await self._add_gap(tp, *admission.gap)
        start = admission.start
        return [] if start is None else [record for record in records if record.offset >= start]

    async def _deliver_batch(
        self, handler: BatchHandler, tp: TP, records: list[Any], generation: int
    ) -> None:
        unread = await self._admitted(tp, records)
        if not unread:
            return
        await self._maybe_commit()
        if self.app.consumer_generation_id != generation or not self.flow_active:
            # A revocation began during the awaits above and may already have committed:
            # a batch started now would be acknowledged after Faust forgot the partition.
            await self._rewind({tp: unread})
            return
        # The handler reads offsets, keys and values, which aiokafka's records have: no
        # Faust message is built per record (~1 µs each; nothing else holds them).
        messages = unread
        self.app.monitor.stream_inbound_time[tp] = monotonic()
        handled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        batch = asyncio.ensure_future(self._run_batch(handler, tp, messages, handled))
        self._batches_in_flight.add(batch)
        batch.add_done_callback(self._batches_in_flight.discard)
        # Shielded: when Faust stops the fetcher (shutdown) it cancels this loop, but a
        # batch whose outputs are being produced runs to its acknowledgement, which
        # `wait_empty` waits for before the final commit. Cancelling it instead would
        # leave produced outputs unacknowledged, to be produced again after a restart.
        if await asyncio.shield(handled):
            self._read_offset[tp] = unread[-1].offset
            self._positions.handed(tp, unread[-1].offset)

    async def _run_batch(
        self,
        handler: BatchHandler,
        tp: TP,
        messages: list[Any],
        handled: asyncio.Future[bool],
    ) -> None:
        """The handler, then (while the drain loop goes on) its deliveries, then the ack."""
        try:
            deliveries = await handler(tp, messages)
        except BaseException as exc:
            handled.set_exception(exc)
            return
        handled.set_result(deliveries is not None)
        if deliveries is None:
            return
        try:
            for delivery in deliveries:
                await delivery
        except Exception as exc:
            # Never acknowledge a batch whose outputs did not reach Kafka: stop the drain
            # loop, so the worker fails and the batch is re-read after a restart.
            self.log.error("Outputs of a batch of %s were not delivered: %r", tp, exc)
            self._batch_failure = exc
            return
        self._ack_batch(tp, messages)
        if self._reached_end(tp, messages[-1].offset):
            self._caught_up.request()

    def _reached_end(self, tp: TP, offset: int) -> bool:
        """Whether ``offset`` is the last of ``tp`` its latest fetch reported."""
        try:
            highwater = self.highwater(tp)
        except AssertionError:  # aiokafka's: no longer assigned
            return False
        return highwater is not None and offset + 1 >= highwater

    def partition_lags(self) -> dict[TP, tuple[int, int]]:
        """(next offset to hand over, records from it to the end offset the last fetch
        reported) of each assigned batch partition where both are known. A partition that
        is not being read keeps its position while its lag does not fall (the worker stays
        ready meanwhile). Call on the app's loop."""
        routing = self._routing()
        if routing is None:
            return {}
        found: dict[TP, tuple[int, int]] = {}
        for tp in self.assignment():
            if routing.batch_handler_for(tp.topic) is None:
                continue
            position = self._positions.next(TP(tp.topic, tp.partition))
            try:
                end = self.highwater(tp)
            except AssertionError:  # aiokafka's: no longer assigned
                continue
            if position is not None and end is not None:
                found[tp] = (position, max(0, end - position))
        return found

    async def _commit_caught_up(self) -> None:
        """A commit of the acknowledged offsets now (see runtime/commit_pacing.py)."""
        if self.should_stop or not self.flow_active:
            return  # stopping or rebalancing: those commit themselves
        await self._no_commit_running()
        await self.commit()

    def _ack_batch(self, tp: TP, messages: list[Any]) -> None:
        """``Consumer.ack`` for a whole batch: one lock, one notification."""
        if not self.app.topics.acks_enabled_for(tp.topic):
            return
        with ack_lock:
            committed = self._committed_offset[tp]
            acked_index = self._acked_index[tp]
            acked = self._acked[tp]
            fresh = 0
            for message in messages:
                offset = message.offset
                if (committed is None or offset >= committed) and offset not in acked_index:
                    acked_index.add(offset)
                    acked.append(offset)
                    fresh += 1
            self._n_acked += fresh
            notify(self._waiting_for_ack)

    async def _wait_for_batches(self) -> None:
        while self._batches_in_flight:
            await asyncio.wait(set(self._batches_in_flight))

    async def _no_commit_running(self) -> None:
        # Faust's commit() returns without committing while another commit runs, one that
        # may predate the last acknowledgements (measured: a SIGTERMed worker's last
        # batches were processed again by the next owner).
        while await self.maybe_wait_for_commit_to_finish():
            pass

    async def wait_empty(self) -> None:
        """Also wait for batches still being handled or delivered (stop); Faust commits
        at the end of this."""
        await self._wait_for_batches()
        await self._no_commit_running()
        await super().wait_empty()

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Commit what was processed *before* Faust forgets the revoked partitions.

        Faust's consumer drops the revoked partitions' acknowledgements first and commits
        afterwards (``App._on_partitions_revoked``), so whatever was processed since the
        last periodic commit was processed again by the next owner. Here no new batch
        starts, the batches in flight finish, and their offsets are committed while the
        partitions are still ours (measured: a worker joining mid-stream no longer makes
        its peer's last seconds of records appear twice). The steps' last outputs and
        state for the revoked partitions (``Step.closing``) go out before that commit.
        """
        if self.assignment():
            self.stop_flow()
            await self._wait_for_batches()
            routing = self._routing()
            if routing is not None:
                await routing.batches_revoked(revoked)
            await self._no_commit_running()
            await self.commit()
        for tp in revoked:
            self._positions.forget(tp)
        await super().on_partitions_revoked(revoked)


class BatchTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with :class:`BatchConsumer` (URL scheme ``streamlearn``)."""

    Consumer = BatchConsumer
