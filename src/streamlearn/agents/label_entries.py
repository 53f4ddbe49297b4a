"""What label-join keeps per request, what it counts, and the examples it makes of them.

State values (one entry per request id in the partition's ``requests`` store) are
JSON-able dicts, always written back whole so the changelog sees every change:

- ``pred``: what was served (model, version, arm, user, features with the context folded
  in, score, ``served_ms``, ``deadline_ms``), None while only feedback is known;
- ``imp`` / ``pos``: [client ms, received ms] of the first impression / positive outcome;
- ``val``: the sum of the values within the horizon (regression labels);
- ``ids``: the feedback event ids taken (deduplication, at most :data:`MAX_EVENT_IDS`);
- ``held``: feedback waiting for its prediction;
- ``done``: the outcome once the horizon closed or the label was sent (None before);
- ``due``: the entry's next deadline (see :class:`~streamlearn.agents.labels.LabelJoiner`);
- ``fake``: set once a fake negative was sent (``fake_negative`` strategy).

A *settled* entry (``done`` set) is remembered only so that a prediction or feedback
delivered again within the retention time is recognised: :func:`settled` keeps of it the
model name and deadline (a feedback's verdict: late or after the label), the event ids
(a copy is a duplicate), the outcome and when to forget it. Keeping the whole entry cost
about 1.6 kB per request for an hour (1 GB/h at 200 predictions/s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from streamlearn.models.specs import LabelDefinition

MAX_EVENT_IDS = 256
"""Feedback ids remembered per request for deduplication (beyond that, not deduplicated)."""

Entry = dict[str, Any]
Example = dict[str, Any]
"""A ``TrainingExample`` record, its timestamps as epoch milliseconds (what Avro's
``timestamp-millis`` writes; the encoders take them as they are)."""


@dataclass
class JoinCounters:
    """Everything the join saw, by what became of it (plain ints; the agent exports them)."""

    predictions: int = 0
    duplicate_predictions: int = 0
    late_predictions: int = 0
    unknown_model: int = 0
    feedback: int = 0
    duplicate_feedback: int = 0
    held_feedback: int = 0
    orphaned_feedback: int = 0
    late_feedback: int = 0
    crawler_feedback: int = 0
    """Impressions and clicks a crawler's user agent sent: not labels (agents/labels.py)."""
    clock_ahead_feedback: int = 0
    """Feedback whose received_ts was more than a second after Kafka appended it (its
    host's clock runs ahead), placed at the append time."""
    clock_ahead_predictions: int = 0
    """Predictions whose served_ts was, likewise (a worker's clock runs ahead)."""
    after_label: int = 0
    positives: int = 0
    negatives: int = 0
    fake_negatives: int = 0
    """Negatives sent at impression under the ``fake_negative`` strategy (``negatives``
    counts the labels that stayed negative, once their horizon closed)."""
    values: int = 0
    unseen: int = 0
    unseen_with_outcome: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def new_entry() -> Entry:
    return {
        "pred": None,
        "imp": None,
        "pos": None,
        "val": 0.0,
        "ids": [],
        "held": [],
        "done": None,
        "due": 0,
    }


def settled(entry: Entry) -> Entry:
    """What a settled entry (``done`` set) is remembered by until it is forgotten."""
    pred = entry["pred"]
    return {
        "pred": {"model_name": pred["model_name"], "deadline_ms": pred["deadline_ms"]},
        "ids": entry["ids"],
        "done": entry["done"],
        "due": entry["due"],
    }


def training_example(
    request_id: str,
    entry: Entry,
    label: LabelDefinition,
    value: float,
    decided_ms: int,
    *,
    outcome: bool,
) -> Example:
    """The ``TrainingExample`` of an entry whose prediction and impression are known."""
    pred = entry["pred"]
    return {
        "request_id": request_id,
        "model_name": pred["model_name"],
        "model_version": pred["model_version"],
        "arm": pred["arm"],
        "user_id": pred["user_id"],
        "features": pred["features"],
        "label": value,
        "label_definition": label.name,
        "score": pred["score"],
        "served_ts": pred["served_ms"],
        "impression_ts": entry["imp"][0],
        "outcome_ts": entry["pos"][0] if outcome else None,
        "labelled_ts": decided_ms,
        "weight": 1.0,
    }
