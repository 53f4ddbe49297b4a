"""Which examples a learner has just read, to learn a re-emitted copy only once.

Label-join is at-least-once: a crash between delivering a batch of examples and writing
its state re-emits the batch, identical, a few offsets later. The learner keeps one
example per identity, ``(request_id, label)`` (the label is part of it: the fake-negative
strategy emits a prediction's negative and, later, its positive on purpose), among the
examples of the last :data:`WINDOW_OFFSETS` offsets of the same partition.

The window is counted in offsets, not examples, so what it holds at an offset is a
function of the log alone: a learner resumed from a snapshot reads the window before the
snapshot's offsets again (skipping, not learning, those records) and holds exactly what a
learner that never stopped holds there, so their payloads stay byte-identical.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

WINDOW_OFFSETS = 10_000
"""How far back (in offsets of one partition) a copy is recognised. A re-emission follows
its original within the restart of one label-join worker; ten thousand offsets is minutes
of examples at the simulated rates and a generous margin at production ones."""

Identity = tuple[Hashable, ...]


def example_identity(example: Mapping[str, Any]) -> Identity | None:
    """What makes a ``TrainingExample`` one: its prediction's request id and its label
    (None without a request id: such a record is never taken for a copy)."""
    request_id = example.get("request_id")
    return None if request_id is None else (request_id, example.get("label"))


class RecentExamples:
    """The identities of the examples read at the last ``window`` offsets, per partition."""

    def __init__(self, window: int = WINDOW_OFFSETS) -> None:
        self.window = window
        self._order: dict[Hashable, deque[tuple[int, Identity]]] = {}
        self._held: dict[Hashable, dict[Identity, int]] = {}
        self._newest: dict[Hashable, int] = {}

    def _evict(
        self, position: Hashable, offset: int
    ) -> tuple[deque[tuple[int, Identity]], dict[Identity, int]]:
        order = self._order.setdefault(position, deque())
        held = self._held.setdefault(position, {})
        oldest = offset - self.window
        while order and order[0][0] < oldest:
            _, identity = order.popleft()
            remaining = held[identity] - 1
            if remaining:
                held[identity] = remaining
            else:
                del held[identity]
        return order, held

    def seen(self, position: Hashable, offset: int, identity: Identity) -> bool:
        """Whether ``identity`` was read in the window before ``offset`` of ``position``;
        it is remembered at ``offset`` either way (offsets only grow: an offset at or
        below the newest remembered one, a redelivery, changes nothing)."""
        if offset <= self._newest.get(position, -1):
            return False
        self._newest[position] = offset
        order, held = self._evict(position, offset)
        count = held.get(identity, 0)
        held[identity] = count + 1
        order.append((offset, identity))
        return count > 0

    def clear(self) -> None:
        self._order.clear()
        self._held.clear()
        self._newest.clear()
