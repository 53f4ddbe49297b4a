"""How an :class:`~streamlearn.models.online.OnlineLearner` makes its versions: when one is
due (the spec's cadence), what it holds (the model, its offsets, the metrics and the
promotion gate's decision and state, :mod:`streamlearn.models.promotion`), and its
signature (:func:`~streamlearn.models.snapshot.build_snapshot`).

With the candidate judge, a version is the candidate cut one window earlier, published
with its verdict; after a resume, the candidate is cut again where the learner that
published the resumed version cut it (:mod:`streamlearn.models.gate_state`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from streamlearn.models.exceptions import SnapshotTooLarge
from streamlearn.models.gate_state import sealed
from streamlearn.models.learner_start import LearnerStart
from streamlearn.models.promotion import Candidate, CandidateGate
from streamlearn.models.safe_pickle import dumps, loads
from streamlearn.models.snapshot import Offsets, build_snapshot


class SnapshotCount(Protocol):
    """What making a version counts (``LearnerCounters`` has it, among its counts)."""

    snapshots: int


class LearnerVersions(LearnerStart):
    """The versions of :class:`~streamlearn.models.online.OnlineLearner`, which holds the
    state they read (declared here for the type checker)."""

    counters: SnapshotCount
    max_payload_bytes: int | None
    _last_snapshot_s: float | None

    def metrics(self) -> dict[str, float]:
        """Metrics since this learner started or resumed: prequential and served
        (:class:`~streamlearn.models.prequential.PrequentialMetrics`)."""
        return self.prequential.figures()

    @property
    def unpublished(self) -> int:
        """Examples learned since the last snapshot."""
        return self._since_snapshot

    def snapshot_due(self, now_s: float) -> bool:
        """True once ``snapshot_every_examples`` examples were learned since the last
        snapshot, or ``snapshot_every_s`` seconds passed with at least one. The first call
        starts the clock; ``now_s`` is any monotonic seconds the caller chooses."""
        if self._last_snapshot_s is None:
            self._last_snapshot_s = now_s
        if self.warm_from is not None or self._resign:
            return True
        if self._since_snapshot == 0 or self._cut_at is not None:
            return False  # nothing new, or the candidate is still to be cut (after a resume)
        if isinstance(self.gate, CandidateGate) and self.gate.waiting:
            return False  # the candidate has not seen its window of examples yet
        return (
            self._since_snapshot >= self.spec.snapshot_every_examples
            or now_s - self._last_snapshot_s >= self.spec.snapshot_every_s
        )

    def snapshot(
        self,
        created: datetime,
        now_s: float | None = None,
        manifest: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """The next signed ``ModelSnapshot``: version + 1, parent = current version.

        The learner moves to the new version at once; if publishing fails the agent
        restarts from the last published snapshot, so a version lost that way is never a
        parent of a published one. ``now_s`` restarts the cadence clock.

        With a gate that judges candidates (``promotion_judge`` "candidate", after the
        first promotion), the snapshot is of the candidate cut at the previous call, with
        its verdict, and the trainee is cut as the next candidate; None when no candidate
        was cut yet (nothing to publish), or when a resumed learner has not yet reached the
        example its candidate is to be cut at (asked when its partition is taken away:
        what it relearned is in the resumed version already, and a cut here would be at
        another example than the learner that published that version cut at).
        """
        gate = self.gate
        if self._cut_at is not None and not self._resign and self.warm_from is None:
            return None
        # A re-signed version is the one resumed from: it is published as it is, not
        # judged (nor cut as a candidate), promoted unless the gate had held it back.
        resign, self._resign = self._resign, False
        judged = isinstance(gate, CandidateGate) and not gate.young
        if judged and not self.warm_from and not resign:
            assert isinstance(gate, CandidateGate)
            return self._judged_snapshot(gate, created, now_s, manifest)
        version = self.version + 1
        payload = dumps(self.model)
        metrics = self.metrics()
        promote = True
        if self.gate is not None and not resign:
            promote, figures = self.gate.decide()
            # In the metrics map (the snapshot schema has no field for it): 1 promoted,
            # 0 published only, with the held-out log losses it was decided on.
            metrics.update(figures, promoted=1.0 if promote else 0.0)
        elif self.gate is not None and self._resumed_held_back:
            promote = False  # the version published again was held back: it stays so
            metrics.update(promoted=0.0)
        # What the gate holds once this decision is taken: a learner resuming from this
        # version goes on from it.
        gate_state = None if self.gate is None else self.gate.state(promoting=promote)
        self._check_size(payload, now_s, gate_state)
        if manifest is None and self.warm_from is not None:
            manifest = self._warm_manifest
        snapshot = self._signed(
            payload, self.trained_examples, self.next_offsets, metrics, created, manifest,
            gate_state,
        )  # fmt: skip
        self.version = version
        if self.gate is not None and promote:
            # A frozen copy, as workers load it.
            self.gate.promote(loads(snapshot["payload"]), self.trained_examples)
        self._since_snapshot = 0
        self.warm_from = None
        self.counters.snapshots += 1
        if now_s is not None:
            self._last_snapshot_s = now_s
        return snapshot

    def _judged_snapshot(
        self,
        gate: CandidateGate,
        created: datetime,
        now_s: float | None,
        manifest: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        """:meth:`snapshot` with a gate that judges candidates (see there)."""
        judged = gate.pending
        if judged is not None and self._too_large(judged.payload):
            gate.drop()  # or it would be judged, and its losses kept, for good
            self._check_size(judged.payload, now_s)
        promote, figures = gate.decide() if judged is not None else (False, {})
        self._cut(gate)
        if now_s is not None:
            self._last_snapshot_s = now_s
        if judged is None:
            return None
        metrics = self.metrics()
        metrics.update(figures, promoted=1.0 if promote else 0.0)
        snapshot = self._signed(
            judged.payload, judged.trained_examples, judged.offsets, metrics, created, manifest,
            gate.state(),  # where the next candidate was cut: a resumed learner cuts there
        )  # fmt: skip
        self.version += 1
        if promote:
            gate.promote(judged.model, judged.trained_examples)
        self.counters.snapshots += 1
        return snapshot

    def _cut(self, gate: CandidateGate) -> None:
        """Cut the trainee as the candidate the gate judges next."""
        payload = dumps(self.model)  # as build_snapshot pickles; frozen as workers load it
        gate.cut(Candidate(payload, self.trained_examples, dict(self.next_offsets), loads(payload)))
        self._cut_at = None
        self._since_snapshot = 0

    def _check_size(
        self, payload: bytes, now_s: float | None, gate_state: Mapping[str, Any] | None = None
    ) -> None:
        """Raise :class:`SnapshotTooLarge`, the learner unchanged but for its cadence (the
        next try is a cadence away: pickling a model that large on every batch would
        starve learning), when ``payload`` (with the gate's state, which the record holds
        too) is over :attr:`max_payload_bytes`."""
        if self._too_large(payload, gate_state):
            self._since_snapshot = 0
            # A warm start's baseline is published at once (snapshot_due): too large, it
            # would be pickled again at every batch.
            self.warm_from = None
            if now_s is not None:
                self._last_snapshot_s = now_s
            size = _record_bytes(payload, gate_state)
            raise SnapshotTooLarge(self.model_name, size, self.max_payload_bytes or 0)

    def _too_large(self, payload: bytes, gate_state: Mapping[str, Any] | None = None) -> bool:
        limit = self.max_payload_bytes
        return limit is not None and _record_bytes(payload, gate_state) > limit

    def _signed(
        self,
        payload: bytes,
        trained_examples: int,
        offsets: Offsets,
        metrics: Mapping[str, float],
        created: datetime,
        manifest: Mapping[str, Any] | None,
        gate_state: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The signed snapshot of the next version (parent: the current one), with the
        gate's state sealed beside it (:mod:`streamlearn.models.gate_state`)."""
        snapshot = build_snapshot(
            self.spec,
            None,
            version=self.version + 1,
            parent_version=self.version or None,
            trained_examples=trained_examples,
            offsets=offsets,
            metrics=metrics,
            created=created,
            key=self._key,
            key_id=self._key_id,
            model_name=self.model_name,
            payload=payload,
            manifest=manifest,
        )
        if gate_state is not None:
            snapshot["gate_state"] = sealed(gate_state, snapshot["signature"], self._key)
        return snapshot


def _record_bytes(payload: bytes, gate_state: Mapping[str, Any] | None) -> int:
    """What the payload and the gate's state take in a snapshot record (the sealed state
    is its values, short but for the losses' base64, a MAC and under 200 bytes more)."""
    extra = 0 if gate_state is None else sum(len(str(v)) for v in gate_state.values()) + 200
    return len(payload) + extra
