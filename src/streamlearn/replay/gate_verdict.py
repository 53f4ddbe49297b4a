"""Whether a published version's promotion verdict is the one its inputs give.

A learner with a promotion gate publishes each version with the gate's decision
(``metrics.promoted``, and the held-out figures it was decided on, ``gate_*``) and the
gate's state after it (``gate_state``). Workers serve by that decision, so a version whose
payload is exactly what its examples produce but whose verdict is not would still serve
users something the log does not explain. A learner resumed from the version's parent,
judging against the version promoted before it, decides as the learner that ran through
did (the gate's state travels in each snapshot), so ``replay verify`` decides again once
the payload is found identical, and compares.

The trainee judge decides where the version was cut. The candidate judge publishes a
version one window after cutting it, so the examples up to where it cut the next
candidate (its ``gate_state``) are learned too, and the candidate judged there is the
version: its payload is compared again with the verdict.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamlearn.models.gate_state import GateStateRefusedError, opened
from streamlearn.models.keyring import Keyring
from streamlearn.models.online import OnlineLearner
from streamlearn.models.promotion import CandidateGate
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import is_promoted
from streamlearn.replay.examples import PreparedRecord
from streamlearn.replay.history import ModelHistory, PublishedSnapshot


@dataclass(frozen=True)
class GateVerdict:
    """What deciding a version's promotion again found."""

    same: bool
    said: str
    """The verdict compared (``held back as published, ...``), what differs, or why it
    was not compared."""


def promoted_before(
    history: ModelHistory, parent: PublishedSnapshot
) -> tuple[Mapping[str, Any] | None, str | None]:
    """What a learner resumed from ``parent`` judges against: (None, None) for a promoted
    parent (itself), (the newest version promoted before it, None) for a held-back one,
    or (None, why it is not known) when ``model.state`` no longer holds every version
    between the two."""
    if is_promoted(parent.snapshot):
        return None, None
    for version in range(parent.version - 1, 0, -1):
        earlier = history.version(version)
        if earlier is None or earlier.rejected is not None:
            return None, f"v{version}, before the held-back v{parent.version}, is gone"
        if is_promoted(earlier.snapshot):
            return earlier.snapshot, None
    return None, f"no version before the held-back v{parent.version} was promoted"


def decision(snapshot: Mapping[str, Any]) -> str:
    """A version's verdict as said: promoted or held back, with the figures it was decided on."""
    metrics = snapshot.get("metrics") or {}
    figures = ", ".join(f"{k} {metrics[k]:g}" for k in sorted(metrics) if k.startswith("gate_"))
    said = "promoted" if is_promoted(snapshot) else "held back"
    return f"{said} ({figures})" if figures else said


def _decided(snapshot: Mapping[str, Any]) -> tuple[bool, dict[str, float]]:
    metrics = snapshot.get("metrics") or {}
    return is_promoted(snapshot), {k: v for k, v in metrics.items() if k.startswith("gate_")}


def _state(snapshot: Mapping[str, Any], key: SigningKey | Keyring) -> str:
    """The gate's state a version carries, said: where the next candidate is cut, how
    many held-out losses its window holds, none, or why it does not open."""
    try:
        state = opened(snapshot, key)
    except GateStateRefusedError as exc:
        return f"a state that does not open ({exc})"
    if state is None:
        return "none"
    if "cut_at" in state:
        return f"the next candidate cut at {state['cut_at']} examples"
    losses = base64.b64decode(str(state.get("losses", "")))
    digest = hashlib.sha256(losses).hexdigest()[:12]
    return f"a window of {len(losses) // 16} held-out losses (sha256 {digest})"


def judge_again(
    learner: OnlineLearner,
    published: Mapping[str, Any],
    key: SigningKey | Keyring,
    read_on: Callable[[], Iterable[PreparedRecord]],
    topic: str,
) -> GateVerdict:
    """Decide ``published``'s promotion again with ``learner`` (resumed from its parent
    as :func:`promoted_before` says, and fed the version's examples); ``read_on()`` gives
    the examples after the version's offsets, which the candidate judge needs."""
    gate = learner.gate
    if gate is None:
        return GateVerdict(
            True, "verdict not compared: the settings give it no gate (STREAMLEARN_MODEL_PROMOTION)"
        )
    if "promoted" not in (published.get("metrics") or {}):
        return GateVerdict(True, "verdict not compared: published without one")
    if isinstance(gate, CandidateGate) and not gate.young:
        try:
            cut = (opened(published, key) or {}).get("cut_at")
        except GateStateRefusedError as exc:
            return GateVerdict(False, f"the gate's state does not open ({exc})")
        if not isinstance(cut, int):
            return GateVerdict(True, "verdict not compared: no next cut recorded")
        if gate.pending is None:
            # The parent recorded no cut (it was promoted young, or was the first version):
            # the live learner cut this version at a snapshot that published nothing, as
            # this call does (nothing judged yet: it cuts and returns None).
            learner.snapshot(datetime.now(UTC))
        examples = iter(read_on())
        try:
            for value, partition, offset in examples:
                if learner.trained_examples >= cut:
                    break
                learner.learn_prepared(value, topic, partition, offset)
        finally:
            # Left before the end: a generator reading ahead in a child process stops now,
            # not whenever it is collected.
            close = getattr(examples, "close", None)
            if close is not None:
                close()
        if learner.trained_examples < cut:
            return GateVerdict(
                True,
                f"verdict not compared: the log holds {learner.trained_examples:,} of the "
                f"{cut:,} examples its judge had learned when it published it",
            )
    again = learner.snapshot(datetime.now(UTC))
    if again is None:
        return GateVerdict(False, f"gate verdict: none recomputed, {decision(published)} published")
    if again["payload_sha256"] != published["payload_sha256"]:
        return GateVerdict(False, "gate verdict: another candidate was judged")
    if _decided(again) != _decided(published):
        said = f"{decision(again)} recomputed, {decision(published)} published"
        return GateVerdict(False, f"gate verdict differs: {said}")
    state, published_state = _state(again, key), _state(published, key)
    if state != published_state:
        said = f"{state} recomputed, {published_state} published"
        return GateVerdict(False, f"the gate's state after it differs: {said}")
    return GateVerdict(True, f"{decision(published)} as published")
