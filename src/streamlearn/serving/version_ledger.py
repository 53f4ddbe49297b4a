"""Which snapshot each recent version of a model was, to tell two writers apart.

The learner that owns a model numbers its snapshots after everything on ``model.state``,
so one version is one snapshot. Two learners of one model (the same agent started in two
consumer groups) each publish their own version 28: two different models under one
number, and a worker would serve whichever it read first. :class:`VersionLedger` keeps
the payload digest of the last versions a worker read, so the second snapshot of a
version is caught (a copy of the same snapshot, read again, is not a conflict).
"""

from __future__ import annotations

from collections import OrderedDict

KEPT_VERSIONS = 64
"""Versions remembered per model: two writers publish at the same cadence, so their
numbers meet within a few versions."""


class VersionLedger:
    def __init__(self, kept: int = KEPT_VERSIONS) -> None:
        self._kept = kept
        self._digests: dict[str, OrderedDict[int, str]] = {}
        self._said: set[tuple[str, int]] = set()

    def conflicts(self, name: str, version: int, digest: str) -> bool:
        """Whether ``name`` v``version`` was read before as another snapshot (True once
        per version: the alert is raised once)."""
        digests = self._digests.setdefault(name, OrderedDict())
        known = digests.get(version)
        if known is None:
            digests[version] = digest
            while len(digests) > self._kept:
                digests.popitem(last=False)
            return False
        if known == digest or (name, version) in self._said:
            return False
        self._said.add((name, version))
        return True

    def forget(self, name: str, version: int, digest: str) -> None:
        """``name`` v``version`` read as ``digest`` did not verify: no version of the
        model's (a forged record read first would make the real one look like a second
        writer's)."""
        digests = self._digests.get(name)
        if digests is not None and digests.get(version) == digest:
            del digests[version]
