"""How served predictions and their feedback become labels: one partition's join.

Both inputs are keyed by request id, so a request's prediction and its feedback share a
partition number, and its join state lives in that partition. The chain is
*served → impression → outcome*, inside the label's horizon after ``served_ts``:

- impression and a positive outcome (binary labels) → label 1, emitted as soon as both are
  known;
- impression, no positive by the horizon → label 0, emitted once the horizon has closed
  (below); regression labels (sum of values) are always emitted then;
- no impression by the horizon → counted as ``unseen`` (``unseen_with_outcome`` if an outcome
  came anyway, which points at lost impressions), never trained on.

That is the ``as_labelled`` strategy of a binary label (``LabelDefinition.strategy``,
docs/learning.md). ``in_order`` holds a positive until its horizon closes, so examples leave
in serving order; ``fake_negative`` emits a negative at the impression (``fake`` set in the
entry) and the positive again if it comes within the horizon, nothing when the horizon
closes without one (the learner weights what it gets: ``ModelSpec.importance``).

Feedback is placed in time by ``received_ts`` (the system's clock, like ``served_ts``),
never by the app's ``client_ts``, which may drift; feedback received after the horizon is
``late`` and ignored. So a label depends on the records alone, not on the order the two
topics are read in: a horizon closes when the *feedback* topic's event time (the newest
``received_ts`` read in the partition) has passed the deadline plus ``allowed_lateness_s``,
i.e. once every feedback that could count has been read, however far the predictions
topic is ahead or behind. Feedback that arrives before its prediction is held until the
prediction comes, or until the *predictions* topic's event time passes
``received + longest horizon + lateness`` (then ``orphaned_feedback``). A quiet live
partition's timer lets both event times advance with the wall clock
(:class:`~streamlearn.runtime.event_time.EventClock`). A feedback event id seen twice
counts once.

Replay-safe: a request's entry stays (with its outcome) for ``retention_s`` after its
horizon closed, so a prediction or feedback delivered again within that time is recognised
and nothing is emitted twice; a prediction whose horizon closed before it arrived, with no
entry, is counted as ``late_predictions`` and dropped (it could only have been unseen, or
already joined and forgotten).

State values are JSON-able dicts (:mod:`streamlearn.agents.label_entries`), always
written back with ``state[key] = entry`` so the changelog sees every change; a settled
entry is cut down to what recognises a replay. ``due`` is the entry's next deadline: on
the feedback clock once its prediction is known (close, then forget), on the predictions
clock while only feedback is held (orphaned). Two in-memory heaps of due times, rebuilt
from the state when a partition is opened, find what is due.

Degraded predictions (a fallback served, ``model_version`` 0) are joined like any other:
the user's reaction is still a label for the features served, and the version shows in the
residuals. ``TrainingExample.features`` are the served features with the request context
folded in as ``ctx.<key>`` (the record has no context field; see
:mod:`streamlearn.models.features`).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal

from streamlearn.agents.event_ids import canonical_uuid
from streamlearn.agents.label_entries import (
    MAX_EVENT_IDS,
    Entry,
    Example,
    JoinCounters,
    new_entry,
    settled,
    training_example,
)
from streamlearn.agents.user_agents import rendering_crawler
from streamlearn.models.inputs import with_context
from streamlearn.models.specs import LabelDefinition, ModelSpec
from streamlearn.runtime.event_time import EventClock, live_lag_ms
from streamlearn.serde.timestamps import epoch_millis

__all__ = ["Example", "JoinCounters", "LabelJoiner"]

BROWSER_KINDS = frozenset({"impression", "click"})
"""Feedback a person's browser sends (the tag): left out when a crawler that renders pages
sent it. Conversions and values, often a server's (payments), are kept."""
IDLE_MS = 10_000
"""A live partition quiet this long lets its horizons close on the wall clock."""
AHEAD_TOLERANCE_MS = 1_000
"""A feedback's ``received_ts`` or a prediction's ``served_ts`` further than this after Kafka
appended the record is the producing host's clock running ahead: the record is placed at
the append time instead."""


def _not_ahead(stamped_ms: int, appended_ms: int | None) -> int:
    """``stamped_ms``, or the broker's ``appended_ms`` when the stamp is further ahead of it
    than :data:`AHEAD_TOLERANCE_MS` (unknown append times, None or -1, change nothing)."""
    if (
        appended_ms is not None
        and appended_ms >= 0
        and stamped_ms - appended_ms > AHEAD_TOLERANCE_MS
    ):
        return appended_ms
    return stamped_ms


class LabelJoiner:
    """Joins one partition's predictions with its feedback, per each model's label
    definition. ``state`` maps request id → entry; ``clock`` holds the partition's two
    event times (both are the partition's stores in the agent, dicts in tests)."""

    def __init__(
        self,
        labels: Mapping[str, LabelDefinition],
        state: MutableMapping[str, Entry],
        clock: MutableMapping[str, Any] | None = None,
        *,
        counters: JoinCounters | None = None,
        allowed_lateness_s: float = 60.0,
        retention_s: float = 3600.0,
        max_held_per_request: int = 32,
        idle_ms: int = IDLE_MS,
    ) -> None:
        self.labels = dict(labels)
        self.state = state
        self.clock_state: MutableMapping[str, Any] = clock if clock is not None else {}
        self.lateness_ms = round(allowed_lateness_s * 1000)
        self.retention_ms = round(retention_s * 1000)
        self.max_held = max_held_per_request
        self.max_horizon_ms = max((label.horizon_ms for label in labels.values()), default=0)
        self.counters = counters or JoinCounters()
        live_lag = live_lag_ms(self.lateness_ms)
        self.feedback_clock = EventClock("feedback", idle_ms, live_lag)
        self.predictions_clock = EventClock("predictions", idle_ms, live_lag)
        self._by_feedback: list[tuple[int, str]] = []
        """Heap of (due, request id) of entries with a prediction (feedback clock)."""
        self._by_predictions: list[tuple[int, str]] = []
        """Heap of (due, request id) of entries holding only feedback (predictions clock)."""
        self.reindex()

    @classmethod
    def for_specs(
        cls, specs: Mapping[str, ModelSpec], state: MutableMapping[str, Entry], **options: Any
    ) -> LabelJoiner:
        """A joiner labelling each model name with its spec's label definition."""
        return cls({name: spec.label for name, spec in specs.items()}, state, **options)

    def _feedback_time(self) -> int:
        return self.feedback_clock.time(self.clock_state) or 0

    def _predictions_time(self) -> int:
        return self.predictions_clock.time(self.clock_state) or 0

    # -- input -------------------------------------------------------------------------

    def on_prediction(
        self, prediction: Mapping[str, Any], appended_ms: int | None = None
    ) -> list[Example]:
        """Take one decoded ``PredictionServed``, appended to Kafka at ``appended_ms`` (the
        broker's time, as the topology stamps ``telemetry.predictions``; None or -1 if
        unknown); returns examples completed by feedback that was waiting for it."""
        self.counters.predictions += 1
        label = self.labels.get(prediction["model_name"])
        if label is None:
            self.counters.unknown_model += 1
            return []
        request_id = str(prediction["request_id"])
        entry = self.state.get(request_id)
        if entry is not None and entry["pred"] is not None:
            self.counters.duplicate_predictions += 1
            return []
        stamped_ms = epoch_millis(prediction["served_ts"])
        served_ms = _not_ahead(stamped_ms, appended_ms)
        if served_ms != stamped_ms:
            # A worker whose clock runs ahead: taken as the partition's time, it would
            # orphan every feedback waiting for its prediction, and make the next late.
            self.counters.clock_ahead_predictions += 1
        self.predictions_clock.observe(self.clock_state, served_ms)
        deadline = served_ms + label.horizon_ms
        if entry is None and deadline + self.lateness_ms <= self._feedback_time():
            self.counters.late_predictions += 1
            return self._expire_orphans(self._predictions_time())
        # An entry that held only feedback moves to the other heap: always re-indexed.
        before = None
        entry = entry if entry is not None else new_entry()
        entry["pred"] = {
            "model_name": prediction["model_name"],
            "model_version": int(prediction["model_version"]),
            "arm": prediction.get("arm"),
            "user_id": prediction.get("user_id"),
            "features": with_context(prediction["features"], prediction.get("context") or {}),
            "score": float(prediction["score"]),
            "served_ms": served_ms,
            "deadline_ms": deadline,
        }
        entry["due"] = deadline + self.lateness_ms
        held, entry["held"] = entry["held"], []
        emitted = []
        for _event_id, kind, value, client_ms, received_ms in sorted(held, key=lambda h: h[4]):
            example = self._apply(request_id, entry, label, kind, value, client_ms, received_ms)
            if example is not None:
                emitted.append(example)
        self._store(request_id, entry, before)
        # A horizon that already closed on the feedback clock closes now.
        emitted += self._close_due(self._feedback_time())
        emitted += self._expire_orphans(self._predictions_time())
        return emitted

    def on_feedback(
        self, feedback: Mapping[str, Any], appended_ms: int | None = None
    ) -> list[Example]:
        """Take one decoded ``Feedback``, appended to Kafka at ``appended_ms`` (the
        record's timestamp: the broker's, as the topology stamps ``telemetry.feedback``;
        None or -1 if unknown); returns the positive example it completes, if any."""
        self.counters.feedback += 1
        request_id = str(feedback["request_id"])
        # Redeliveries are told by event id: one written in another UUID form is the same.
        event_id = canonical_uuid(str(feedback["event_id"])) or str(feedback["event_id"])
        stamped_ms = epoch_millis(feedback["received_ts"])
        received_ms = _not_ahead(stamped_ms, appended_ms)
        if received_ms != stamped_ms:
            # A host whose clock runs ahead (a TelemetryClient's stamps received_ts): taken
            # as the partition's time, it would close every open horizon early and make the
            # feedback read after it late.
            self.counters.clock_ahead_feedback += 1
        self.feedback_clock.observe(self.clock_state, received_ms)
        if feedback["kind"] in BROWSER_KINDS and rendering_crawler(feedback.get("user_agent")):
            # Preprocess filters crawlers from events; feedback reaches label-join without
            # it. A crawler rendering pages (the tag's impressions) is not a person: its
            # prediction stays unseen, as if nobody saw it. Only browser-like user agents:
            # servers forward feedback with their own HTTP stack's.
            self._take_crawler_feedback(request_id, event_id, received_ms)
            return self._close_due(self._feedback_time())
        example = self._take_feedback(request_id, event_id, received_ms, feedback)
        emitted = [] if example is None else [example]
        return emitted + self._close_due(self._feedback_time())

    def _noted(
        self, request_id: str, event_id: str, received_ms: int
    ) -> tuple[Entry, int | None] | Literal["late", "duplicate"]:
        """The entry feedback ``event_id`` of ``request_id`` goes to (a new one, held for
        its prediction, if there is none yet) with its due time before, the id noted in
        it; or why there is none: too late for any prediction, or a redelivery (counted)."""
        entry = self.state.get(request_id)
        before = None if entry is None else entry["due"]
        if entry is None:
            orphaned_at = received_ms + self.max_horizon_ms + self.lateness_ms
            if orphaned_at <= self._predictions_time():
                return "late"
            entry = new_entry()
            entry["due"] = orphaned_at
        if event_id in entry["ids"]:
            self.counters.duplicate_feedback += 1
            return "duplicate"
        if len(entry["ids"]) < MAX_EVENT_IDS:
            entry["ids"].append(event_id)
        return entry, before

    def _take_crawler_feedback(self, request_id: str, event_id: str, received_ms: int) -> None:
        """Count a crawler's feedback once per event id: its id is remembered like any
        feedback's, so a redelivery is a duplicate (only a late one, which has no entry to
        remember it in, could count twice)."""
        noted = self._noted(request_id, event_id, received_ms)
        if noted == "duplicate":
            return
        self.counters.crawler_feedback += 1
        if noted != "late":
            entry, before = noted
            self._store(request_id, entry, before)

    def _take_feedback(
        self, request_id: str, event_id: str, received_ms: int, feedback: Mapping[str, Any]
    ) -> Example | None:
        noted = self._noted(request_id, event_id, received_ms)
        if noted == "late":
            self.counters.late_feedback += 1
            return None
        if noted == "duplicate":
            return None
        entry, before = noted
        kind = str(feedback["kind"])
        value = feedback.get("value")
        client_ms = epoch_millis(feedback["client_ts"])
        example = None
        if entry["pred"] is None:
            if len(entry["held"]) < self.max_held:
                entry["held"].append([event_id, kind, value, client_ms, received_ms])
                self.counters.held_feedback += 1
            else:
                self.counters.orphaned_feedback += 1
        else:
            label = self._label_of(request_id, entry)
            if label is None:
                return None
            example = self._apply(request_id, entry, label, kind, value, client_ms, received_ms)
        self._store(request_id, entry, before)
        return example

    # -- time --------------------------------------------------------------------------

    def advance(self, now_ms: int) -> list[Example]:
        """Both inputs' event time moves to ``now_ms`` (as a quiet live partition's timer
        moves it): close due horizons, drop unclaimed feedback, forget old entries."""
        for clock in (self.feedback_clock, self.predictions_clock):
            if (clock.time(self.clock_state) or 0) < now_ms:
                self.clock_state[clock.name] = now_ms
        return self.catch_up()

    def advance_live(self, now_ms: int, read_ms: int | None) -> list[Example]:
        """A timer's turn (see :meth:`EventClock.advance_live`)."""
        self.feedback_clock.advance_live(self.clock_state, now_ms, read_ms)
        self.predictions_clock.advance_live(self.clock_state, now_ms, read_ms)
        return self.catch_up()

    def catch_up(self) -> list[Example]:
        """Close what is due at the inputs' event times."""
        return self._close_due(self._feedback_time()) + self._expire_orphans(
            self._predictions_time()
        )

    def _close_due(self, feedback_ms: int) -> list[Example]:
        """Close horizons (negatives, regression values, unseen) and forget entries past
        retention, up to ``feedback_ms`` on the feedback clock."""
        heap = self._by_feedback
        emitted: list[Example] = []
        while heap and heap[0][0] <= feedback_ms:
            due, request_id = heapq.heappop(heap)
            entry = self.state.get(request_id)
            if entry is None or entry["due"] != due or entry["pred"] is None:
                continue  # stale heap item: the entry moved on or is gone
            if entry["done"] is None:
                example = self._close(request_id, entry)
                if example is not None:
                    emitted.append(example)
                if entry["done"] is not None:
                    self._store(request_id, entry, due)
            else:
                del self.state[request_id]
        return emitted

    def _expire_orphans(self, predictions_ms: int) -> list[Example]:
        """Drop held feedback whose prediction never came, up to ``predictions_ms``."""
        heap = self._by_predictions
        while heap and heap[0][0] <= predictions_ms:
            due, request_id = heapq.heappop(heap)
            entry = self.state.get(request_id)
            if entry is None or entry["due"] != due or entry["pred"] is not None:
                continue
            self.counters.orphaned_feedback += len(entry["held"])
            del self.state[request_id]
        return []

    def reindex(self) -> None:
        """Rebuild the in-memory index of due times from the state."""
        self._by_feedback = []
        self._by_predictions = []
        for request_id, entry in self.state.items():
            heap = self._by_feedback if entry["pred"] is not None else self._by_predictions
            heap.append((entry["due"], request_id))
        heapq.heapify(self._by_feedback)
        heapq.heapify(self._by_predictions)

    # -- internals ---------------------------------------------------------------------

    def _store(self, request_id: str, entry: Entry, due_before: int | None) -> None:
        if entry["done"] is not None:
            entry = settled(entry)  # what was served is not needed any more
        self.state[request_id] = entry
        if entry["due"] != due_before:
            heap = self._by_feedback if entry["pred"] is not None else self._by_predictions
            heapq.heappush(heap, (entry["due"], request_id))

    def _apply(
        self,
        request_id: str,
        entry: Entry,
        label: LabelDefinition,
        kind: str,
        value: float | None,
        client_ms: int,
        received_ms: int,
    ) -> Example | None:
        deadline = entry["pred"]["deadline_ms"]
        if received_ms > deadline:
            self.counters.late_feedback += 1
            return None
        if entry["done"] is not None:
            self.counters.after_label += 1
            return None
        if kind == "impression":
            if entry["imp"] is None:
                entry["imp"] = [client_ms, received_ms]
        elif kind in label.positive_kinds or kind in label.value_kinds:
            if entry["pos"] is None:
                entry["pos"] = [client_ms, received_ms]
            if kind in label.value_kinds and value is not None:
                entry["val"] += float(value)
        if label.task != "binary" or entry["imp"] is None:
            return None
        if entry["pos"] is not None:
            if label.strategy == "in_order":
                return None  # emitted when the horizon closes, in serving order
            decided = max(entry["imp"][1], entry["pos"][1])
            self.counters.positives += 1
            return self._finish(request_id, entry, label, 1.0, "positive", decided)
        if label.strategy == "fake_negative" and not entry.get("fake"):
            # Seen, no click yet: a negative now; a click before the horizon adds the
            # positive, and the learner's importance weights undo the double count.
            entry["fake"] = True
            self.counters.fake_negatives += 1
            return training_example(request_id, entry, label, 0.0, received_ms, outcome=False)
        return None

    def _label_of(self, request_id: str, entry: Entry) -> LabelDefinition | None:
        """The entry's label definition; None (entry dropped, counted) if its model is no
        longer configured, e.g. after a restart with other settings."""
        label = self.labels.get(entry["pred"]["model_name"])
        if label is None:
            self.counters.unknown_model += 1
            self.state.pop(request_id, None)
        return label

    def _close(self, request_id: str, entry: Entry) -> Example | None:
        label = self._label_of(request_id, entry)
        if label is None:
            return None
        deadline = entry["pred"]["deadline_ms"]
        if entry["imp"] is None:
            self.counters.unseen += 1
            if entry["pos"] is not None:
                self.counters.unseen_with_outcome += 1
            self._mark_done(entry, "unseen")
            return None
        if label.task == "binary":
            if entry["pos"] is not None:  # in_order: the positive held until now
                self.counters.positives += 1
                return self._finish(request_id, entry, label, 1.0, "positive", deadline)
            self.counters.negatives += 1
            example = self._finish(request_id, entry, label, 0.0, "negative", deadline)
            return None if entry.get("fake") else example  # fake_negative: sent at impression
        self.counters.values += 1
        return self._finish(request_id, entry, label, float(entry["val"]), "value", deadline)

    def _mark_done(self, entry: Entry, outcome: str) -> None:
        entry["done"] = outcome
        entry["due"] = entry["pred"]["deadline_ms"] + self.lateness_ms + self.retention_ms

    def _finish(
        self,
        request_id: str,
        entry: Entry,
        label: LabelDefinition,
        value: float,
        outcome: str,
        decided_ms: int,
    ) -> Example:
        self._mark_done(entry, outcome)
        has_outcome = entry["pos"] is not None and outcome != "negative"
        return training_example(request_id, entry, label, value, decided_ms, outcome=has_outcome)
