"""The models a worker serves: an atomic store of verified models, filled by the follower
of ``model.state`` (:mod:`streamlearn.serving.follower`).

:class:`ModelStore` maps a model name to a :class:`~streamlearn.models.LoadedModel`.
Swapping is one dict assignment on the event loop, and a predict handler reads the entry it
uses once and then runs to its response without awaiting, so a request (a whole batch) sees
one model version from start to end.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from streamlearn.models import LoadedModel
from streamlearn.serving.experiments import NEWEST, base_model
from streamlearn.serving.scoring import Scorer, scorer_for


@dataclass(frozen=True)
class Served:
    """A loaded model and when it was swapped in."""

    loaded: LoadedModel
    loaded_at: float
    created_s: float
    """``created_ts`` as epoch seconds (for the age checks on the request path)."""
    published_s: float | None = None
    """When the snapshot reached ``model.state`` (its record's timestamp), epoch seconds."""
    freshness_s: float | None = None
    """Published → served, for a snapshot published while this worker ran (None for one
    published before it started: its age says nothing about how fast workers follow)."""
    score: Scorer | None = None
    """(features, context) → the raw score, as ``spec.predict`` gives it
    (:func:`~streamlearn.serving.scoring.scorer_for`, built once per version)."""
    retires_s: float | None = None
    """When the grace of the previous signing key that signed it ends (epoch seconds):
    from then on a worker would refuse it, so this one stops serving it. None: signed
    with the current key."""


class ModelStore:
    """Model name → the verified model serving it (the newest *promoted* version), and
    ``<name>~newest`` → the newest verified version, promoted or not.

    A version the learner's promotion gate held back (``metrics.promoted`` 0) is loaded
    and verified like any other but serves only arms routed to the newest; until a
    promoted version of a model is known (a ``model.state`` written before held-back
    versions were keyed ``<model>~newest`` may keep only a held-back one once compacted)
    the newest serves everybody: better than the fallback.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.configured = tuple(dict.fromkeys(names))
        self._models: dict[str, Served] = {}
        self._newest: dict[str, Served] = {}
        # Configured models with at least one snapshot on model.state (accepted or not).
        self._published: set[str] = set()
        self.started_s = time.time()

    def get(self, name: str) -> Served | None:
        if name.endswith(NEWEST):
            return self._newest.get(name.removesuffix(NEWEST))
        return self._models.get(name) or self._newest.get(name)

    def names(self) -> list[str]:
        return sorted(set(self.configured) | set(self._models) | set(self._newest))

    def wants(self, name: str) -> bool:
        return base_model(name) in self.configured

    def version(self, name: str) -> int:
        """The promoted version of ``name`` (0: none known)."""
        served = self._models.get(name)
        return 0 if served is None else served.loaded.version

    def newest_version(self, name: str) -> int:
        """The newest verified version of ``name``, promoted or not (0: none)."""
        served = self._newest.get(name)
        return 0 if served is None else served.loaded.version

    def put(
        self,
        loaded: LoadedModel,
        published_s: float | None = None,
        *,
        promoted: bool = True,
        retires_s: float | None = None,
    ) -> Served:
        """Serve ``loaded``: as the newest version if it is newer than the newest, and as
        the promoted one if ``promoted`` and newer than the promoted one (until
        ``retires_s``, see :meth:`retire`)."""
        now = time.time()
        fresh = published_s is not None and published_s >= self.started_s
        served = Served(
            loaded,
            now,
            loaded.created_ts.timestamp(),
            published_s,
            max(0.0, now - published_s) if fresh and published_s is not None else None,
            scorer_for(loaded.spec, loaded.model),
            retires_s,
        )
        name, version = loaded.model_name, loaded.version
        if version > self.newest_version(name):
            self._newest[name] = served
        if promoted and version > self.version(name):
            self._models[name] = served
        return served

    def retire(self, now_s: float) -> list[Served]:
        """Stop serving every version whose signing key's grace ended by ``now_s`` (each
        returned once, even when it was both the promoted and the newest version)."""
        retired: dict[int, Served] = {}
        for entries in (self._models, self._newest):
            for name, served in list(entries.items()):
                if served.retires_s is not None and served.retires_s <= now_s:
                    del entries[name]
                    retired[id(served)] = served
        return list(retired.values())

    def saw_snapshot(self, name: str) -> None:
        """A snapshot of ``name`` (or one of its arms) was read, whether accepted or not."""
        self._published.add(base_model(name))

    def not_loaded(self) -> list[str]:
        """Configured models with no verified snapshot loaded (published or not)."""
        return [n for n in self.configured if self.get(n) is None]

    def missing(self) -> list[str]:
        """Published models not loaded: nothing verified was read for them (yet)."""
        return [n for n in self.configured if self.get(n) is None and n in self._published]

    def unpublished(self) -> list[str]:
        """Configured models nobody has published a snapshot of: served by the fallback."""
        return [n for n in self.configured if self.get(n) is None and n not in self._published]


__all__ = ("ModelStore", "Served")
