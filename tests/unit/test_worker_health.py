"""An agent worker's probes: live while its loop beats, ready once started and not
rebalancing or recovering."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from streamlearn.runtime import health as health_module
from streamlearn.runtime.health import WorkerHealth

pytestmark = pytest.mark.unit


def _health(**state: Any) -> WorkerHealth:
    app = SimpleNamespace(rebalancing=False, in_recovery=False, **state)
    return WorkerHealth(app, stale_after_s=30)  # type: ignore[arg-type]


def test_a_worker_is_live_while_its_loop_beats_and_not_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: now[0])
    health = _health()
    assert health.liveness()[0], "starting is not a reason to restart"
    health.last_beat = now[0]
    now[0] += 29
    assert health.liveness() == (True, {"status": "ok", "beat_age_s": 29})
    now[0] += 2
    alive, body = health.liveness()
    assert not alive
    assert body["status"] == "event loop stalled"


def test_a_worker_is_ready_once_started_and_not_while_rebalancing_or_recovering() -> None:
    health = _health()
    assert health.readiness() == (False, {"status": "starting"})
    health.last_beat = 1.0
    assert health.readiness()[0]
    health.app.rebalancing = True
    assert not health.readiness()[0]
    health.app.rebalancing = False
    health.app.in_recovery = True
    assert not health.readiness()[0]
