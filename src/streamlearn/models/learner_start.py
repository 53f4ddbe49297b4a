"""Where an :class:`~streamlearn.models.online.OnlineLearner` starts from, other than a
fresh model: its own newest verified version (:meth:`LearnerStart.resume`, after a restart
or a rebalance), or a baseline trained on history (:meth:`LearnerStart.warm_start`).

Resuming also carries a key rotation through: a version the previous key signed is
published again, signed with the current key, so that no worker refuses the model once the
rotation's grace ends (docs/security.md).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from streamlearn.models.exceptions import ModelError, SnapshotRejected
from streamlearn.models.gate_state import GateStateRefusedError, opened, sealed
from streamlearn.models.keyring import Keyring
from streamlearn.models.prequential import PrequentialMetrics
from streamlearn.models.promotion import CandidateGate, PromotionGate
from streamlearn.models.recent_examples import RecentExamples
from streamlearn.models.safe_pickle import loads
from streamlearn.models.signature import key_bytes
from streamlearn.models.snapshot import is_promoted, load_model, signed_again
from streamlearn.models.specs import ModelSpec

log = logging.getLogger(__name__)


class LearnerStart:
    """The starting points of :class:`~streamlearn.models.online.OnlineLearner`, which
    holds the state they set (declared here for the type checker)."""

    spec: ModelSpec
    model: Any
    model_name: str
    examples_of: str
    arm: str | None
    version: int
    trained_examples: int
    next_offsets: dict[tuple[str, int], int]
    recent_examples: RecentExamples
    gate: PromotionGate | CandidateGate | None
    prequential: PrequentialMetrics
    warm_from: str | None
    _binary: bool
    _key: bytes
    _key_id: str | None
    _verification: Keyring | bytes
    _resign: bool
    _resumed_held_back: bool
    _promoted_signed_again: dict[str, Any] | None
    _warm_manifest: dict[str, Any] | None
    _since_snapshot: int
    _cut_at: int | None
    gate_resumed: str | None
    """What the last resume took back of the gate's state, said (None: nothing)."""

    def _reset_metrics(self) -> None:
        self.prequential = PrequentialMetrics(self._binary)

    def resume(
        self, snapshot: Mapping[str, Any], promoted: Mapping[str, Any] | None = None
    ) -> None:
        """Continue from a snapshot of this model: verified and safely loaded, or a
        :class:`~streamlearn.models.SnapshotRejected` leaves the learner as it was. With a
        gate, ``promoted`` is the newest version it promoted (None: ``snapshot`` itself),
        which it judges the next versions against, as workers serve it."""
        specs = {self.spec.name: self.spec}
        loaded = load_model(snapshot, self._verification, specs=specs)
        if loaded.model_name != self.model_name:
            raise ModelError(
                f"a snapshot of {loaded.model_name} cannot resume the learner of {self.model_name}"
            )
        serving = None
        if self.gate is not None and promoted is not None and promoted is not snapshot:
            try:
                serving = load_model(promoted, self._verification, specs=specs)
            except SnapshotRejected as exc:  # e.g. of the spec before an upgrade
                log.warning("%s: judging against v%d instead: %s", self.model_name,
                            loaded.version, exc)  # fmt: skip
        # Signed with the previous key (during a rotation's grace): published again, as the
        # next version, signed with the current one. Otherwise a model with no new examples
        # in the grace kept its old signature, and once the grace ended a worker that
        # (re)started refused it and served the fallback. Asked before anything changes.
        verification = self._verification

        def signed_by_previous_key(record: Mapping[str, Any]) -> bool:
            return isinstance(verification, Keyring) and key_bytes(
                verification.key_for(record)
            ) != key_bytes(self._key)

        resign = signed_by_previous_key(snapshot)
        # Likewise the promoted version behind a held-back one: it keeps its place on
        # model.state (under the model's own key) until a version is promoted, and signed
        # only with the previous key, every worker started after the grace refused it and
        # served the fallback. Signed again as it is (the same version and payload).
        promoted_again = None
        if serving is not None and promoted is not None and signed_by_previous_key(promoted):
            promoted_again = self._signed_again(promoted)
        gate_state = self._gate_state(snapshot) if self.gate is not None else None
        self.model = loaded.model
        self._cut_at = self.gate_resumed = None
        if self.gate is not None:  # a model of its own: the promoted one never learns
            if serving is None:  # the resumed version counts as promoted (verified above)
                self.gate.promote(loads(bytes(snapshot["payload"])), loaded.trained_examples)
            else:
                self.gate.promote(serving.model, serving.trained_examples)
            if isinstance(self.gate, CandidateGate):
                self.gate.pending = self.gate.cut_at = None  # cut from another run's trainee
            # The held-out losses were of the promoted version behind the snapshot: of no
            # use against another (the resumed one stands in when that one is not given or
            # does not load).
            usable = serving is not None or is_promoted(snapshot)
            if gate_state is not None and usable:
                self._restore_gate(gate_state, loaded.trained_examples)
        self.version = loaded.version
        self.trained_examples = loaded.trained_examples
        self.next_offsets = dict(loaded.offsets)
        self._resign = resign
        self._resumed_held_back = not is_promoted(snapshot)
        self._promoted_signed_again = promoted_again
        self.recent_examples.clear()  # refilled from the window before the offsets, read again
        self._since_snapshot = 0
        self._reset_metrics()

    def _gate_state(self, snapshot: Mapping[str, Any]) -> dict[str, Any] | None:
        """The gate state ``snapshot`` carries, opened; None when it has none, or one that
        cannot be used (said: resumed from, the gate then starts anew, as before states
        were kept; signed again, the version goes out without one)."""
        try:
            return opened(snapshot, self._verification)
        except (GateStateRefusedError, SnapshotRejected) as exc:
            log.error("%s v%s: gate state not used (%s)", self.model_name,
                      snapshot.get("version"), exc)  # fmt: skip
            return None

    def _restore_gate(self, state: Mapping[str, Any], trained_examples: int) -> None:
        gate = self.gate
        assert gate is not None
        try:
            gate.restore(state)
        except (ValueError, KeyError, TypeError) as exc:  # e.g. the judge was changed since
            log.warning("%s: gate state of another judge or shape not used: %s",
                        self.model_name, exc)  # fmt: skip
            return
        if isinstance(gate, PromotionGate):
            self.gate_resumed = f"the gate's window of {gate.held_out:,} held-out losses"
        elif gate.cut_at is not None:
            if gate.cut_at > trained_examples and not gate.young:
                self._cut_at = gate.cut_at  # cut as relearning reaches it (learn_prepared)
                self.gate_resumed = f"its next candidate to be cut at {gate.cut_at:,} examples"
            else:
                # The cut is behind the resumed version (a version published again after a
                # rotation), or the gate judges nothing yet (its settings changed): the
                # next snapshot cuts, as before states were kept.
                gate.cut_at = None

    def _signed_again(self, snapshot: Mapping[str, Any]) -> dict[str, Any]:
        """:func:`signed_again` with the current key, its gate state sealed again (or left
        out when it cannot be opened)."""
        again = signed_again(snapshot, self._key, self._key_id)
        state = self._gate_state(snapshot) if snapshot.get("gate_state") is not None else None
        key, signature = self._key, again["signature"]
        again["gate_state"] = None if state is None else sealed(state, signature, key)
        return again

    def take_signed_again(self) -> dict[str, Any] | None:
        """Once after a resume during a key rotation's grace: the promoted version behind
        the held-back one resumed from, signed with the current key, to publish as it is
        (None when there is nothing to sign again)."""
        again, self._promoted_signed_again = self._promoted_signed_again, None
        return again

    def warm_start(self, snapshot: Mapping[str, Any], *, offsets: bool = True) -> None:
        """Start from a baseline snapshot of this spec published under another name (the
        spec's ``warm_start``, trained on the history by ``replay model``): verified and
        safely loaded, or a :class:`~streamlearn.models.SnapshotRejected` leaves the
        learner as it was. The learner goes on online from the snapshot's offsets (with
        ``offsets=False`` from the start of its input: a fresh log, as in the learning
        lab) and publishes its first version at once, so workers serve the baseline
        instead of the fallback. Its own versions are numbered as before (from 1)."""
        loaded = load_model(snapshot, self._verification, specs={self.spec.name: self.spec})
        self.model = loaded.model
        # The gate has no promoted version yet: the first one published (the baseline
        # with whatever was learned since) is promoted, as for a cold start.
        self.trained_examples = loaded.trained_examples
        self.next_offsets = dict(loaded.offsets) if offsets else {}
        self.recent_examples.clear()
        self.warm_from = f"{loaded.model_name} v{loaded.version}"
        # Recorded in the first version's manifest: `replay verify` recomputes it from this
        # baseline, not from a fresh model (which gave another payload: a false "DIFFERS").
        # (What a replay's manifest says too: whose examples, which arm.)
        self._warm_manifest = {
            "examples_of": self.examples_of,
            "arm": self.arm,
            "warm_start": {"model_name": loaded.model_name, "version": loaded.version},
        }
        self._reset_metrics()
