"""The one place that orders a batch's side effects: deliver, then write state, then ack.

For every batch (and every tick) of a step's partition, :meth:`Checkpoints.submit` takes
the batch's outputs and its state changes (already encoded: a later batch cannot alter
them) and returns a task that

1. hands the outputs to the producer, after the previous checkpoint of the same partition
   handed over its own (so a partition's outputs keep their order, e.g. a session before
   its correction), and waits until Kafka confirmed them;
2. then writes the state changes to the changelog, after the previous checkpoint of the
   partition wrote its own (the changelog keeps the order of the state), and waits;
3. then completes, which is when the batch consumer acknowledges the batch's offsets; Faust
   commits acknowledged offsets (after flushing its producer) periodically, on revoke,
   and soon after a batch catches its partition up (runtime/commit_pacing.py).

A crash between 1 and 2 re-runs the batch from the previous state: its outputs go out
again, identical (steps are deterministic); between 2 and 3 likewise, with state that
already includes the batch, which every step recognises (an event id counted once, an
offset already learned). Nothing is lost, since nothing is acknowledged before it is
delivered and its state written. Different partitions' checkpoints overlap freely.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from streamlearn.runtime.outputs import OutputBatches


class Checkpoints:
    """Per-partition chains of checkpoints."""

    def __init__(self) -> None:
        self._handed: dict[Hashable, asyncio.Future[None]] = {}
        self._done: dict[Hashable, asyncio.Future[None]] = {}

    def submit(
        self, chain: Hashable, outputs: OutputBatches, state: OutputBatches
    ) -> asyncio.Task[None]:
        """Deliver ``outputs``, then write ``state``, after the chain's earlier checkpoints."""
        loop = asyncio.get_running_loop()
        handed: asyncio.Future[None] = loop.create_future()
        task = asyncio.ensure_future(
            self._run(self._handed.get(chain), self._done.get(chain), handed, outputs, state)
        )
        self._handed[chain] = handed
        self._done[chain] = task
        task.add_done_callback(lambda _: self._forget(chain, task))
        # A failure is the batch's (the consumer stops); the handed-over future is only an
        # ordering signal and is never awaited after one.
        handed.add_done_callback(lambda f: f.cancelled() or f.exception())
        return task

    def _forget(self, chain: Hashable, task: asyncio.Future[None]) -> None:
        if self._done.get(chain) is task:
            del self._done[chain]
            del self._handed[chain]

    @staticmethod
    async def _run(
        previous_handed: asyncio.Future[None] | None,
        previous_done: asyncio.Future[None] | None,
        handed: asyncio.Future[None],
        outputs: OutputBatches,
        state: OutputBatches,
    ) -> None:
        try:
            if previous_handed is not None:
                await previous_handed
            deliveries = await outputs.send()
        except BaseException as exc:
            handed.set_exception(exc)
            raise
        handed.set_result(None)
        for delivery in deliveries:
            await delivery
        if previous_done is not None:
            await previous_done
        for delivery in await state.send():
            await delivery

    async def drain(self, chains: set[Hashable] | None = None) -> None:
        """Until the checkpoints of ``chains`` (all if None) submitted so far completed."""
        pending = [task for chain, task in self._done.items() if chains is None or chain in chains]
        if pending:
            await asyncio.gather(*pending)
