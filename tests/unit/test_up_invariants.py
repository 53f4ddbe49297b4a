"""Invariant 2 of a chaos run over hand-made topic contents (no broker): each seen
prediction with an accepted impression makes one example, or label-join's rules say why not."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import pytest

from streamlearn.serving.telemetry import DELIVERY_TIMEOUT_MS
from streamlearn.settings import Settings
from streamlearn.simulate.ledger import Ledger
from streamlearn.up.invariants_examples import LOST_WITH_WORKER_MARGIN_S, examples_once

T0 = 1_800_000_000_000  # ms
HORIZON_S, LATENESS_S = 10, 2


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _prediction(request_id: str, served_ms: int) -> dict[str, Any]:
    return {"request_id": request_id, "model_name": "ctr", "served_ts": _at(served_ms)}


def _feedback(request_id: str, received_ms: int, kind: str = "impression") -> dict[str, Any]:
    return {"request_id": request_id, "kind": kind, "received_ts": _at(received_ms)}


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setitem(os.environ, "STREAMLEARN_MODELS", '["ctr"]')
    monkeypatch.setitem(os.environ, "STREAMLEARN_LABEL_HORIZON_S", str(HORIZON_S))
    monkeypatch.setitem(os.environ, "STREAMLEARN_LABEL_ALLOWED_LATENESS_S", str(LATENESS_S))
    return Settings()


def _judge(
    settings: Settings,
    examples: list[str | tuple[str, float, int]],
    dropped: int = 0,
    *,
    answered_at: float | None = None,
    worker_kills: tuple[float, ...] = (),
) -> tuple[bool, str]:
    """``examples``: request ids at offsets 0, 1, ... of partition 0 (label 1), or
    (request id, label, offset)."""
    predictions = [
        (0, 0, _prediction("once", T0)),
        (0, 1, _prediction("late", T0)),
        (0, 2, _prediction("closed", T0)),
        (1, 0, _prediction("open", T0 + 60_000)),
    ]
    feedback = [
        (0, 0, _feedback("once", T0 + 1_000)),
        (0, 1, _feedback("other", T0 + 13_000)),  # the clock passes closed's deadline
        (0, 2, _feedback("closed", T0 + 9_000)),  # in time, but read after it closed
        (0, 3, _feedback("late", T0 + 11_000)),  # after the 10 s horizon
        (1, 0, _feedback("open", T0 + 61_000)),  # nothing later in partition 1
    ]
    located = {
        "telemetry.predictions": predictions,
        "telemetry.feedback": feedback,
        "training.examples": [
            (0, e[2], {"request_id": e[0], "label": e[1]})
            if isinstance(e, tuple)
            else (0, i, {"request_id": e, "label": 1.0})
            for i, e in enumerate(examples)
        ],
    }
    seen = {"once", "late", "closed", "open", "unlogged"}
    # Answered long before any kill, but "unlogged" when the test says.
    ledger = Ledger(answered_at=dict.fromkeys(seen, 0.0), impressions=seen)
    if answered_at is not None:
        ledger.answered_at["unlogged"] = answered_at
    check = examples_once(
        located,
        ledger,
        {"predictions": {"telemetry_dropped": dropped}},
        settings,
        worker_kills=worker_kills,
    )
    return check.passed, check.detail


def test_each_missing_example_is_explained_by_label_joins_rules(settings: Settings) -> None:
    passed, detail = _judge(settings, ["once"], dropped=1)
    assert passed, detail
    assert "1 once, 0 re-emitted by label-join and learned once, 0 more than once" in detail
    assert "impression after the horizon 1" in detail
    assert "horizon closed before the impression was read 1" in detail
    assert "horizon still open 1" in detail
    assert "prediction never logged 1" in detail


def test_a_copy_the_learner_skips_is_no_violation(settings: Settings) -> None:
    """Label-join re-emits after a crash: the same example a few offsets later, which
    the learner learns once (models/recent_examples.py)."""
    passed, detail = _judge(settings, ["once", "once"], dropped=1)
    assert passed, detail
    assert "0 once, 1 re-emitted by label-join and learned once (e.g. once)" in detail


def test_a_copy_or_an_unexplained_loss_is_a_violation(settings: Settings) -> None:
    assert not _judge(settings, [("once", 1.0, 0), ("once", 0.0, 1)], dropped=1)[0]
    assert not _judge(settings, [("once", 1.0, 0), ("once", 1.0, 10_001)], dropped=1)[0]
    passed, detail = _judge(settings, [], dropped=1)
    assert not passed
    assert "1 missing (e.g. once)" in detail
    assert not _judge(settings, ["once"], dropped=0)[0]  # never logged, yet none dropped


def test_a_prediction_lost_with_a_sigkilled_worker_is_explained_by_the_kill(
    settings: Settings,
) -> None:
    """A worker's telemetry waits in memory (its buffer, then librdkafka's queue, for up to
    the delivery timeout) after the answer went out: a SIGKILL loses it uncounted."""
    kill = 1_000_000.0
    before = kill - DELIVERY_TIMEOUT_MS / 1000 + 1
    passed, detail = _judge(settings, ["once"], answered_at=before, worker_kills=(kill,))
    assert passed, detail
    assert "prediction never logged 1 (1 answered by a worker SIGKILLed" in detail
    # Answered after the kill, or longer before it than a record can wait: not the kill's.
    long_before = kill - DELIVERY_TIMEOUT_MS / 1000 - LOST_WITH_WORKER_MARGIN_S - 1
    for answered in (kill + 1, long_before):
        assert not _judge(settings, ["once"], answered_at=answered, worker_kills=(kill,))[0]
