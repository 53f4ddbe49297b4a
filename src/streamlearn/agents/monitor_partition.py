"""The monitor's streams of one partition, and the bounds on how many a client can make.

Streams are kept as objects and written back to the partition's store after each batch
(only those a batch touched). Two things a client chooses would otherwise add streams
for good: feature names (a stream per name served) and ``app_version`` (a stream set per
producer). Both are bounded per partition, and what the bounds turn away is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Protocol

MAX_FEATURE_STREAMS = 256
"""Feature streams per model and arm in a partition. A stream per feature name served, kept
for good, let any client grow the monitor with made-up names (a probe: 2.9 GB, and a
changelog it was still reading back 6 minutes after a restart); names past the bound are
counted (``streamlearn_monitor_untracked_features_total``), not tracked: the first names
a partition saw keep their streams, as the model's inputs are those served first."""

MAX_PRODUCERS = 64
"""Producers (``app_version``) with streams in a partition. Versions come and go (every
release is a new one), so past the bound the producer heard from least recently is
retired: its streams and their alert cooldowns leave the store (a later record of it
starts them anew) and ``streamlearn_monitor_retired_producers_total`` counts it. A client
sending made-up versions faster than a real one sends records can keep retiring it: the
bound protects memory, not the monitoring of a version under such a flood (the counter
shows it)."""

PRODUCERS = "producers"
"""Store key: producer → the ``events.clean`` offset it was last heard from."""


class Stream(Protocol):
    def to_json(self) -> Any: ...


class PartitionStreams:
    """The streams of one partition over its store."""

    def __init__(self, store: MutableMapping[str, Any]) -> None:
        self.store = store
        self.streams: dict[str, Any] = {}
        self.touched: set[str] = set()
        self.features: dict[str, set[str]] = {}
        """(model, arm) → the feature names it tracks (kept in the store as well)."""
        self._producers: dict[str, int] | None = None
        """Loaded from the store on first use, written back with the streams."""
        self._producers_heard = False
        self.retired: list[str] = []
        """Producers retired since the runtime last took them (:meth:`take_retired`)."""

    def tracked(self, model: str, arm: str | None) -> set[str]:
        """The feature names of (``model``, ``arm``) that have a stream (do not change it)."""
        key = f"features/{model}/{arm or ''}"
        names = self.features.get(key)
        if names is None:
            names = self.features[key] = set(self.store.get(key) or ())
        return names

    def tracks(self, model: str, arm: str | None, name: str) -> bool:
        """Whether the feature ``name`` of (``model``, ``arm``) has a stream: the first
        :data:`MAX_FEATURE_STREAMS` names the partition saw do, in log order."""
        key = f"features/{model}/{arm or ''}"
        names = self.tracked(model, arm)
        if name in names:
            return True
        if len(names) >= MAX_FEATURE_STREAMS:
            return False
        names.add(name)
        self.store[key] = sorted(names)
        return True

    def heard_from(self, producer: str, offset: int) -> str | None:
        """Note the record at ``offset`` from ``producer``; the producer retired to make
        room for it, if any (least recently heard from, so a function of the log)."""
        producers = self._producers
        if producers is None:
            producers = self._producers = dict(self.store.get(PRODUCERS) or {})
        retired = None
        if producer not in producers and len(producers) >= MAX_PRODUCERS:
            retired = min(producers, key=producers.__getitem__)
            del producers[retired]
            self.retired.append(retired)
        producers[producer] = offset
        self._producers_heard = True
        return retired

    def producers(self) -> list[str]:
        """The producers whose streams the partition keeps."""
        if self._producers is None:
            self._producers = dict(self.store.get(PRODUCERS) or {})
        return list(self._producers)

    def take_retired(self) -> list[str]:
        """The producers retired since the last call (some may have come back since)."""
        retired, self.retired = self.retired, []
        return list(dict.fromkeys(retired))

    def get(self, key: str, make: Callable[[Mapping[str, Any] | None], Stream]) -> Any:
        stream = self.peek(key, make)
        self.touched.add(key)
        return stream

    def peek(self, key: str, make: Callable[[Mapping[str, Any] | None], Stream]) -> Any:
        """The stream, to read: unless :meth:`get` takes it too, it is not written back."""
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = make(self.store.get(key))
        return stream

    def drop(self, keys: Iterable[str]) -> None:
        """Forget these streams, in memory and in the store."""
        for key in keys:
            self.streams.pop(key, None)
            self.touched.discard(key)
            if key in self.store:
                del self.store[key]

    def forget_alerts(self, alert_keys: Iterable[str]) -> None:
        """Drop these alert keys' cooldowns (of streams that are gone)."""
        cooldowns = self.store.get("cooldown")
        if not cooldowns:
            return
        kept = dict(cooldowns)
        for key in alert_keys:
            kept.pop(key, None)
        if len(kept) != len(cooldowns):
            self.store["cooldown"] = kept

    def write_back(self) -> None:
        for key in self.touched:
            self.store[key] = self.streams[key].to_json()
        self.touched.clear()
        if self._producers_heard:
            self.store[PRODUCERS] = dict(self._producers or {})
            self._producers_heard = False
