"""What simulated traffic is made of: its configuration, the hits it produces (with the
recommendation slots of each page and their true outcomes), and seeded ids.

:mod:`~streamlearn.simulate.traffic` makes the hits; the loop, the learning lab and the
tests read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streamlearn.models.inputs import FeatureValue
from streamlearn.simulate.changes import FIELD_DROPPED_SUFFIX, Change, ChangeKind
from streamlearn.simulate.world import Actor

HitKind = Literal["page_view", "duplicate", "malformed"]


@dataclass(frozen=True)
class TrafficConfig:
    rate: float = 50.0
    users: int = 1000
    bot_share: float = 0.05
    duplicate_share: float = 0.02
    late_share: float = 0.03
    malformed_share: float = 0.01
    slot_share: float = 0.6
    drift_at_s: float | None = None
    seed: int = 0
    app_version: str = "simulator"
    changes: tuple[Change, ...] = ()
    """Changes of the world (at most one of each kind); ``drift_at_s`` is the older spelling
    of a ``concept_drift`` change (give one or the other)."""

    def __post_init__(self) -> None:
        # Finite too: an infinite rate sizes an infinite crowd of crawlers (an OverflowError
        # in the middle of `up`, once every part had started).
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"--rate {self.rate:g}: requests a second, more than 0 and finite")
        if self.users < 1:
            raise ValueError(f"--users {self.users}: at least 1")
        for name in ("bot_share", "duplicate_share", "late_share", "malformed_share", "slot_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        object.__setattr__(self, "changes", tuple(self.changes))  # a list given: hashable
        kinds = [change.kind for change in self.changes]
        repeated = sorted({kind for kind in kinds if kinds.count(kind) > 1})
        if repeated:
            raise ValueError(f"at most one change of each kind: {', '.join(repeated)} repeated")
        if self.drift_at_s is not None and "concept_drift" in kinds:
            raise ValueError("give drift_at_s or a concept_drift change, not both")

    def change_at(self, kind: ChangeKind) -> float | None:
        """The second change ``kind`` starts (``drift_at_s`` for concept drift), or None."""
        if kind == "concept_drift" and self.drift_at_s is not None:
            return self.drift_at_s
        return next((change.at_s for change in self.changes if change.kind == kind), None)

    def changed(self, kind: ChangeKind, at_s: float) -> bool:
        """Whether change ``kind`` is in effect at simulated second ``at_s``."""
        start = self.change_at(kind)
        return start is not None and at_s >= start

    def app_version_at(self, at_s: float) -> str:
        """The version the app sends at ``at_s`` (a new one once ``field_dropped`` started)."""
        if self.changed("field_dropped", at_s):
            return self.app_version + FIELD_DROPPED_SUFFIX
        return self.app_version


@dataclass(frozen=True)
class Slot:
    """One recommended item on a page, with its true probability and outcome."""

    features: dict[str, FeatureValue]
    context: dict[str, str]
    p_click: float
    seen: bool
    clicked: bool
    converted: bool
    value: float
    impression_after_s: float
    click_after_s: float
    conversion_after_s: float


@dataclass(frozen=True)
class Hit:
    """One JSON item for the collector (sent from ``ip``), and the slots of its page."""

    at_s: float
    kind: HitKind
    actor: Actor
    item: dict[str, Any]
    late: bool = False
    slots: tuple[Slot, ...] = ()


ID_BATCH = 1024
"""UUIDs drawn per generator call: one call per id was most of an id's cost."""


def seeded_ids(seed: int, stream: int = 7) -> Callable[[], str]:
    """A deterministic UUID generator (for tests and the lab); the simulator uses
    :func:`uuid.uuid4`. Generators of other ``stream`` numbers draw other ids.

    Ids are drawn :data:`ID_BATCH` at a time: the generator's bytes come out the same
    whatever the batch, so the ids are those of a call per id. Each is
    ``str(uuid.UUID(bytes=..., version=4))`` of its 16 bytes, with the version and variant
    bits set on the whole batch at once and formatted from one hex string (a sixth of
    ``uuid.UUID``'s cost, which was 3 % of the learning lab's)."""
    rng = np.random.default_rng([seed, stream])
    ready: list[str] = []

    def new_id() -> str:
        if not ready:
            raw = np.frombuffer(rng.bytes(16 * ID_BATCH), dtype=np.uint8).reshape(-1, 16).copy()
            raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
            raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
            text = raw.tobytes().hex()
            ready.extend(
                f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-"
                f"{text[i + 16 : i + 20]}-{text[i + 20 : i + 32]}"
                for i in range(0, len(text), 32)
            )
            ready.reverse()
        return ready.pop()

    return new_id
