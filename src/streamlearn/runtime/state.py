"""Partition-scoped state with tracked changes: what a step reads and writes.

One :class:`PartitionState` per (store, partition): a plain dict for reads, plus the set
of keys written since the last :meth:`PartitionState.take_changes`, which the runtime
calls once a batch is handled to get the changelog records to write after the batch's
outputs. Values are serialized then (JSON), so a later batch changing the same value in
place cannot alter what this batch's changelog says.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

_MISSING = object()

Change = tuple[bytes, bytes | None]
"""A changelog record: the key's UTF-8 bytes and the value's JSON (None: deleted)."""


def encode_value(value: Any) -> bytes:
    return orjson.dumps(value)


def decode_value(value: bytes) -> Any:
    return orjson.loads(value)


class PartitionState(MutableMapping[str, Any]):
    """One store's state of one partition."""

    __slots__ = ("_changed", "data")

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._changed: dict[str, None] = {}  # an ordered set: changelog in write order

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._changed[key] = None

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self._changed[key] = None

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    # The generic MutableMapping versions go through __getitem__ and KeyError; this one is
    # on every record's path.
    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def take_changes(self) -> list[Change]:
        """The changelog records of every key written since the last call, in the order
        they were first written."""
        data = self.data
        changes = [
            (key.encode(), None if (value := data.get(key, _MISSING)) is _MISSING
             else encode_value(value))
            for key in self._changed
        ]  # fmt: skip
        self._changed.clear()
        return changes

    def apply(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record (restoring: not a change to write again)."""
        if value is None:
            self.data.pop(key.decode(), None)
        else:
            self.data[key.decode()] = decode_value(value)
