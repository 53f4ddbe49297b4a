"""The simulator's AUC ceiling is over a window of impressions, so a long run stays flat."""

from __future__ import annotations

import pytest

import streamlearn.simulate.summary as summary_module
from streamlearn.simulate import Summary

WINDOW = 100


def test_the_ceiling_keeps_only_the_newest_impressions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "TRUTH_WINDOW", WINDOW)
    counts = Summary()
    # Long ago the truth ranked every click first; lately it ranks them last.
    for _ in range(WINDOW):
        counts.record_impression(0.9, True, False)
        counts.record_impression(0.1, False, False)
    for _ in range(WINDOW // 2):
        counts.record_impression(0.1, True, False)
        counts.record_impression(0.9, False, False)
    assert len(counts._truth) == WINDOW
    assert counts.finish().truth_auc_ceiling == 0.0
    assert counts.impressions == 3 * WINDOW
