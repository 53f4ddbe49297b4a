"""A model that no longer learns, pickled once, loaded once per process, compiled once.

A ``TrailingAverage`` keeps frozen copies of its tree, and each snapshot carries them all:
six of a version's seven trees are the previous version's, unchanged. Pickled as objects,
every snapshot would pickle them again, every worker would unpickle them again for every
version, and compile their leaves again (measured on ``ctr_tree`` after 20,000 examples:
17 ms to pickle a snapshot, 10 ms to load it, of which the copies are six sevenths).

So a copy is pickled on its own, once, into its canonical payload (:func:`.safe_pickle.dumps`),
and a snapshot holds those bytes. Loading one reads each copy's bytes through the same
restricted unpickler (:func:`.safe_pickle.loads`), inside a payload whose signature was
checked before any of it was read; a process keeps the copies it loaded in a small cache
keyed by their bytes, so the next version's identical copies are the same objects, with
their compiled probability already built. They are shared between versions, which is safe
because nothing changes a frozen copy.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from river import base

from streamlearn.models.compiled_tree import TREES, LeafScore
from streamlearn.models.exceptions import UndecodableSnapshot
from streamlearn.models.log_odds_tree import log_odds_tree
from streamlearn.models.safe_pickle import dumps, loads

LOADED_COPIES_KEPT = 64
"""Copies a process keeps by their bytes: a few versions' worth of every model's copies."""


def copy_probability(model: base.Classifier) -> LeafScore:
    """A frozen copy's probability of True: a tree's log-odds form (it no longer learns),
    else the copy's own ``predict_proba_one``."""
    if type(model) in TREES:
        return log_odds_tree(model)
    return lambda x: float(model.predict_proba_one(dict(x)).get(True, 0.0))


class FrozenCopy:
    """A model that no longer learns, with its payload and its probability made once."""

    __slots__ = ("_payload", "_probability", "model")

    def __init__(self, model: base.Classifier, payload: bytes | None = None) -> None:
        self.model = model
        self._payload = payload
        self._probability: LeafScore | None = None

    @property
    def payload(self) -> bytes:
        """The model's canonical payload, pickled on first use."""
        if self._payload is None:
            self._payload = dumps(self.model)
        return self._payload

    @property
    def probability(self) -> LeafScore:
        """:func:`copy_probability` of the model, built on first use."""
        if self._probability is None:
            self._probability = copy_probability(self.model)
        return self._probability

    def __reduce__(self) -> tuple[Any, ...]:
        # Never pickled as an object: a TrailingAverage writes its copies' payloads (and a
        # deepcopy of one goes through that state too).
        raise TypeError("a FrozenCopy is pickled as its payload")


_loaded: OrderedDict[bytes, FrozenCopy] = OrderedDict()
_loaded_lock = threading.Lock()  # snapshots may be loaded off the event loop's thread


def loaded_copy(payload: Any) -> FrozenCopy:
    """The copy in ``payload`` (bytes from a verified snapshot), the same object as the last
    time these bytes were loaded in this process if it is still kept."""
    if type(payload) is not bytes:
        raise UndecodableSnapshot(f"a frozen copy is bytes, not {type(payload).__name__}")
    with _loaded_lock:
        known = _loaded.get(payload)
        if known is not None:
            _loaded.move_to_end(payload)
            return known
    frozen = FrozenCopy(loads(payload), payload)
    with _loaded_lock:
        known = _loaded.setdefault(payload, frozen)  # another thread's, if it was first
        while len(_loaded) > LOADED_COPIES_KEPT:
            _loaded.popitem(last=False)
    return known
