"""Online learning of one model: prequential evaluation, learning, versioned snapshots.

Pure logic, no Kafka: the learner agent (:mod:`streamlearn.agents.learner`) feeds it
``training.examples`` records with their topic, partition and offset, asks
:meth:`OnlineLearner.snapshot_due` after each batch, and publishes what
:meth:`OnlineLearner.snapshot` returns to ``model.state``. Replay and the benchmarks run
the same code. How versions are made is in :mod:`streamlearn.models.learner_versions`, where
a learner starts from in :mod:`streamlearn.models.learner_start`.

Exactly-once learning over an at-least-once stream. The learner keeps, per input
(topic, partition), the next offset to read; every snapshot records those offsets next to
the model that has learned everything before them. On restart, :meth:`OnlineLearner.resume`
restores model, version, count and offsets from the newest verified snapshot; the agent
seeks to those offsets, and anything delivered again below them is skipped by
:meth:`OnlineLearner.learn`. A copy label-join re-emitted after a crash (same request id and
label, a few offsets later) is learned once (:mod:`streamlearn.models.recent_examples`).
Since learning is deterministic and prediction does not touch the model, the resumed
model's payload equals, byte for byte, that of a model fed the same examples once,
in-process.

Prequential evaluation: each example is scored before it is learned (``auc`` and
``log_loss`` for binary specs, ``mae`` and ``rmse`` for regressors, River metrics;
:mod:`streamlearn.models.prequential`). The
metrics are *not* in the payload, so the payload stays exactly the model; they describe the
examples evaluated since this learner started or resumed (``evaluated_examples`` says how
many) and restart from zero on resume. A snapshot's ``metrics`` are therefore always
"this process's prequential metrics so far", never a splice of two processes' estimates.

Snapshot serialisation is blocking (pickle + HMAC): the agent runs :meth:`snapshot` in a
thread (``asyncio.to_thread``) and does not call :meth:`learn` until it returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import safe_pickle
from streamlearn.models.example_checks import example_problem
from streamlearn.models.exceptions import ForbiddenClass
from streamlearn.models.inputs import NUMBER_LIMIT, ModelInput
from streamlearn.models.keyring import Keyring
from streamlearn.models.learner_versions import LearnerVersions
from streamlearn.models.prepared import PreparedExample, prepared_example
from streamlearn.models.promotion import CandidateGate, PromotionGate
from streamlearn.models.recent_examples import RecentExamples
from streamlearn.models.signature import SigningKey, key_bytes
from streamlearn.models.specs import ModelSpec

SOURCE = "learner"


def snapshot_name(spec_name: str, arm: str | None) -> str:
    """The ``model.state`` key of a model learned per experiment arm: ``<name>@<arm>``."""
    return spec_name if arm is None else f"{spec_name}@{arm}"


@dataclass
class LearnerCounters:
    """What happened to every record read (plain ints; the agent exports them)."""

    learned: int = 0
    replayed: int = 0
    """Records below the next offset already learned (a redelivery): skipped."""
    other_model: int = 0
    """Records for another model or arm: consumed without learning."""
    invalid: int = 0
    """Examples the model cannot learn from (:func:`~.example_checks.example_problem`: a
    label or weight out of its range, a number beyond ±2^63): not learned."""
    clipped: int = 0
    """Regression labels outside what the spec's rules let it serve (``clamp_min`` to
    ``clamp_max``), learned as the nearest bound."""
    copies: int = 0
    """Copies of an example read shortly before (same request id and label): not learned."""
    model_error: int = 0
    """Examples the spec's model raised on (predicting or learning) or scored with a
    non-finite number: not learned (see :attr:`OnlineLearner.last_failure`)."""
    snapshots: int = 0


class _NonFiniteScoreError(ValueError):
    """The model scored an example NaN or infinite (a worker serves its fallback then)."""


FAILURE_CHARACTERS = 1_000
"""The most of a failure's text kept: it goes into every rejection of the example (and the
log), and a step's message may hold a large input."""


def _described(exc: Exception) -> str:
    """``KeyError: 'price'``: the exception a model raised on an example, for its rejection
    (a non-finite score says itself), cut to :data:`FAILURE_CHARACTERS`."""
    text = str(exc) if isinstance(exc, _NonFiniteScoreError) else f"{type(exc).__name__}: {exc}"
    if len(text) <= FAILURE_CHARACTERS:
        return text
    said = f"… ({len(text):,} characters)"
    return text[: FAILURE_CHARACTERS - len(said)] + said


def _check_loadable(spec: ModelSpec, model: Any) -> None:
    """Refuses a spec whose fresh model holds a class workers will not unpickle.

    The restricted unpickler (:mod:`streamlearn.models.safe_pickle`) builds only classes of
    the River subpackages it allows: a pipeline with, say, ``naive_bayes.GaussianNB``
    pickled fine, so its learner published snapshots that every worker rejected (the
    fallback served for good) and that it could not resume from itself (a cold start at
    each restart), all without a word at start. A fresh model already holds the class of
    every step, so one round trip of it (a few ms, once per learner) finds those.
    """
    try:
        safe_pickle.loads(safe_pickle.dumps(model))
    except ForbiddenClass as exc:
        allowed = ", ".join(safe_pickle.ALLOWED_RIVER_PACKAGES)
        raise ConfigurationError(
            f"spec {spec.name}: its estimator holds {exc.module}.{exc.name}, which prediction "
            f"workers will not load from a snapshot (allowed: classes of {allowed}, and the "
            "globals in streamlearn.models.safe_pickle.ALLOWED_GLOBALS)"
        ) from None


class OnlineLearner(LearnerVersions):
    """One online model (of ``spec``, optionally for one experiment arm)."""

    counters: LearnerCounters

    def __init__(
        self,
        spec: ModelSpec,
        *,
        signing_key: SigningKey | None,
        signing_key_id: str | None = None,
        seed: int = 0,
        arm: str | None = None,
        examples_of: str | None = None,
        model_name: str | None = None,
        verification: Keyring | None = None,
    ) -> None:
        self.spec = spec
        self.max_payload_bytes: int | None = None
        """A snapshot whose payload is larger is not made (:class:`SnapshotTooLarge`): it
        would not fit ``model.state`` (the learner agent sets it from the topic's limit)."""
        self._binary = spec.task == "binary"
        self._label_range = (
            max(spec.rules.clamp_min, -NUMBER_LIMIT),
            min(spec.rules.clamp_max, NUMBER_LIMIT),
        )
        """Regression labels a model learns: what its rules let it serve."""
        self.last_invalid: str | None = None
        """Why the last example offered was not learned when the model cannot learn from
        it (``<field>: <why>``; the learner agent sends it to ``events.rejected``), else
        None."""
        self.failed_with: Exception | None = None
        """What the model raised on the last example offered (or its non-finite score, as
        :class:`_NonFiniteScoreError`), else None; :attr:`last_failure` says it."""
        self.first_failure: str | None = None
        """The first :attr:`last_failure` of this learner, with where
        (``training.examples[0] offset 3: KeyError: 'price'``): what ``replay model``
        reports, having no ``events.rejected`` to write to."""
        self.arm = arm
        self.model_name = model_name or snapshot_name(spec.name, arm)
        """The name snapshots are published under (a replay may choose a shadow name)."""
        self.examples_of = examples_of or spec.name
        """The model whose examples train this one: its own, unless a replay trains a
        new spec on another model's history."""
        self.seed = seed
        self._key = key_bytes(signing_key)
        self._key_id = signing_key_id
        self._resign = False
        """The version resumed from was signed with the previous key: publish it again."""
        self._resumed_held_back = False
        """The version resumed from was held back by the gate (kept so if published again)."""
        self._promoted_signed_again: dict[str, Any] | None = None
        """The promoted version behind the held-back one resumed from, signed with the
        current key when it was signed with the previous one (:meth:`take_signed_again`)."""
        self._verification: Keyring | bytes = verification or self._key
        """What :meth:`resume` verifies with (during a rotation: the previous key too)."""
        self.model: Any = spec.new_model(seed)
        _check_loadable(spec, self.model)
        self.version = 0
        """Version of the last snapshot made or resumed from; 0 before the first."""
        self.trained_examples = 0
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.counters = LearnerCounters()
        self.recent_examples = RecentExamples()
        """The examples of the last offsets, to learn a re-emitted copy once."""
        self._since_snapshot = 0
        self._last_snapshot_s: float | None = None
        self.warm_from: str | None = None
        """The baseline snapshot this learner started from (``name vN``), until its first
        snapshot is published (due at once)."""
        self._warm_manifest: dict[str, Any] | None = None
        """That first snapshot's manifest, naming the baseline (``replay verify`` reads it)."""
        self.gate: PromotionGate | CandidateGate | None = None
        """The promotion gate of the spec, if it has one (what it holds besides the
        promoted model is in each snapshot's ``gate_state``; after a resume it judges
        against the newest promoted version)."""
        self._cut_at: int | None = None
        """Resumed with the candidate judge: the trained-example count at which to cut the
        next candidate (:attr:`CandidateGate.cut_at`); None otherwise."""
        self.gate_resumed: str | None = None
        if spec.promotion_margin is not None:
            margin, window = spec.promotion_margin, spec.promotion_window
            after = spec.promotion_after_examples
            if spec.promotion_judge == "candidate":
                self.gate = CandidateGate(margin, window, after, spec.promotion_auc_margin)
            else:
                self.gate = PromotionGate(margin, window, after)
        self.on_scored: Callable[[int | None, float, float, float], None] | None = None
        """Called as ``on_scored(served_ms, label, score, weight)`` with each example's
        served time (epoch ms, None when it has none), label and prequential score, before
        it is learned (the learning lab judges prequential figures per window with it);
        never part of the model."""
        self._reset_metrics()

    def accepts(self, model_name: str, arm: str | None) -> bool:
        """Whether an example of ``model_name`` (and ``arm``) trains this learner's model."""
        return model_name == self.examples_of and (self.arm is None or arm == self.arm)

    def learn(self, example: Mapping[str, Any], topic: str, partition: int, offset: int) -> bool:
        """Score, then learn ``example`` read at (topic, partition, offset).

        Returns whether the model learned it: False for a redelivered offset (already
        learned), another model's example and an invalid one (their offsets still count
        as consumed).
        """
        return self.learn_prepared(prepared_example(example), topic, partition, offset)

    def learn_prepared(
        self, prepared: PreparedExample, topic: str, partition: int, offset: int
    ) -> bool:
        """:meth:`learn` of an example already through :func:`prepared_example` (a replay,
        and the learner agent, prepare examples in the process that decodes them, while
        this one learns)."""
        model_name, arm, identity, x, label, weight, served, served_by, served_ms = prepared
        self.last_invalid = self.failed_with = None
        position = (topic, partition)
        already = self.next_offsets.get(position)
        if already is not None and offset < already:
            self.counters.replayed += 1
            # Read again after a resume: what the window held there (recent_examples.py).
            if (
                offset >= already - self.recent_examples.window
                and identity is not None
                and self.accepts(model_name, arm)
            ):
                self.recent_examples.seen(position, offset, identity)
            return False
        self.next_offsets[position] = offset + 1
        if not self.accepts(model_name, arm):
            self.counters.other_model += 1
            return False
        if identity is not None and self.recent_examples.seen(position, offset, identity):
            self.counters.copies += 1  # label-join re-emitted it after a crash
            return False
        spec = self.spec
        if not self._binary:
            low, high = self._label_range
            if not low <= label <= high and -NUMBER_LIMIT <= label <= NUMBER_LIMIT:
                # Learned as the nearest bound of what the rules let the model serve: one
                # value of 1e15 made conversion_value predict 1.2e10 for everybody, and
                # 2.2e7 after 5,000 normal examples. A real total past the bound (or a
                # refund below it) still counts, as the most the model can say.
                label = min(max(label, low), high)
                self.counters.clipped += 1
        problem = example_problem(self._binary, x, label, weight)
        if problem is not None:
            self.counters.invalid += 1
            self.last_invalid = problem
            return False
        truth = spec.target(label)
        try:
            score, weight = self._score_and_learn(x, label, truth, weight)
        except Exception as exc:
            # A user's pipeline fails on real data (River's Select on a missing key, a
            # division by a feature that is 0): raised out of the learner step, it stopped
            # the agent at this record, and again after every restart, so no model of the
            # partition learned on. Not learned, named, counted; the learner goes on.
            self.counters.model_error += 1
            self.failed_with = exc
            if self.first_failure is None:
                self.first_failure = f"{topic}[{partition}] offset {offset}: {self.last_failure}"
            return False
        if self.on_scored is not None:
            self.on_scored(served_ms, label, score, weight)
        self.prequential.update(truth, score, weight, served_by, served)
        self.trained_examples += 1
        self._since_snapshot += 1
        self.counters.learned += 1
        if self.trained_examples == self._cut_at:
            # Resumed: where the learner that published the resumed version cut its next
            # candidate, the same trainee is cut again (gate_state.py).
            assert isinstance(self.gate, CandidateGate)
            self._cut(self.gate)
        return True

    @property
    def last_failure(self) -> str | None:
        """What the model did with the last example offered when it raised on it or scored
        it non-finite (``KeyError: 'price'``; the learner agent sends it to
        ``events.rejected`` as ``model_error``), else None."""
        return None if self.failed_with is None else _described(self.failed_with)

    def _score_and_learn(
        self, x: ModelInput, label: float, truth: bool | float, weight: float
    ) -> tuple[float, float]:
        """Score ``x`` (prequential), let the gate see it, then learn it; returns the score
        and the weight learned with. Raises what the spec's model raised, or
        :class:`_NonFiniteScoreError` (nothing learned then: one NaN score made the
        prequential log loss NaN for good)."""
        spec, model = self.spec, self.model
        score = spec.predict(model, x)
        if not math.isfinite(score):
            raise _NonFiniteScoreError(f"non-finite score {score}")
        weight *= spec.importance(label, score)
        if self.gate is not None:
            self.gate.observe(spec, x, bool(truth), score)
        # River's Pipeline learns its steps in order: one that raises may leave the steps
        # before it updated. Whatever it leaves, a restart or a replay of the same examples
        # leaves too (the model stays a function of the log).
        spec.learn(model, x, label, weight)
        return score, weight

    def learn_many(self, records: Iterable[tuple[Mapping[str, Any], str, int, int]]) -> int:
        """:meth:`learn` over (example, topic, partition, offset) records, in order; returns
        how many were learned. Same result as one call per record, whatever the batching."""
        learned = 0
        for example, topic, partition, offset in records:
            learned += self.learn(example, topic, partition, offset)
        return learned

    def metrics_record(
        self, window_start: datetime, window_end: datetime, emitted: datetime
    ) -> dict[str, Any]:
        """A ``ModelMetrics`` record of the prequential metrics (source ``learner``), about
        the model version being trained from (the last snapshot's)."""
        return {
            "model_name": self.model_name,
            "model_version": self.version,
            "arm": self.arm,
            "source": SOURCE,
            "window_start_ts": window_start,
            "window_end_ts": window_end,
            "example_count": self.prequential.evaluated,
            "metrics": self.metrics(),
            "emitted_ts": emitted,
        }
