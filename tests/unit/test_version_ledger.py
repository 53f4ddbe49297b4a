"""Two snapshots under one version number: two writers of one model."""

from __future__ import annotations

import pytest

from streamlearn.serving.version_ledger import VersionLedger

pytestmark = pytest.mark.unit


def test_a_second_snapshot_of_a_version_is_a_conflict_said_once() -> None:
    ledger = VersionLedger(kept=3)
    assert not ledger.conflicts("ctr", 28, "a")
    assert not ledger.conflicts("ctr", 28, "a"), "the same snapshot read again"
    assert not ledger.conflicts("ctr_tree", 28, "b"), "another model's v28"
    assert ledger.conflicts("ctr", 28, "b")
    assert not ledger.conflicts("ctr", 28, "c"), "said once per version"


def test_only_the_last_versions_are_kept() -> None:
    ledger = VersionLedger(kept=2)
    for version in (1, 2, 3):
        ledger.conflicts("ctr", version, f"d{version}")
    assert not ledger.conflicts("ctr", 1, "other"), "v1 was forgotten"
    assert ledger.conflicts("ctr", 3, "other")
