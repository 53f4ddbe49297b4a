"""A supervised part's watch on its supervisor, without processes: what it sends itself."""

from __future__ import annotations

import signal

import pytest

from streamlearn import orphan_watch

pytestmark = pytest.mark.unit


def test_an_orphan_that_does_not_stop_cleanly_is_stopped_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by a new user: after `kill -KILL <up>` the embedded broker went with it, and
    the five agents and the archive, sent SIGTERM by their watch at that moment, waited in
    Faust's shutdown for a broker that was gone: alive five minutes later, logging
    connection errors, a second SIGTERM ignored. A part still alive a while after its
    SIGTERM now ends itself with SIGKILL (nothing it holds can reach Kafka anyway)."""
    parents = iter([100, 100, 1])  # up, up, then re-parented
    sent: list[int] = []
    slept: list[float] = []
    monkeypatch.setattr(orphan_watch.os, "getppid", lambda: next(parents))
    monkeypatch.setattr(orphan_watch.os, "kill", lambda pid, sig: sent.append(sig))
    monkeypatch.setattr(orphan_watch.time, "sleep", slept.append)
    orphan_watch._watch(100)
    assert sent == [signal.SIGTERM, signal.SIGKILL]
    assert slept == [orphan_watch.CHECK_INTERVAL_S] * 2 + [orphan_watch.CLEAN_STOP_S]
