"""Which topics the archive agent reads: topology names or shell patterns over them."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import PARTIAL_DIR
from streamlearn.topology.catalogue import CatalogueTopic, TopicCatalogue

DEFAULT_TOPICS = ("telemetry.*", "events.clean", "events.sessions", "training.examples")
"""What happened (raw telemetry), what the agents made of it, and what the models learned
from: enough to replay the loop. State topics (``model.state``, ``experiments``) are
compacted and keep their own history."""

_WILDCARDS = frozenset("*?[")


def select_topics(patterns: Iterable[str], catalogue: TopicCatalogue) -> list[CatalogueTopic]:
    """The declared topics matching any of ``patterns`` (topology names; ``*``, ``?`` and
    ``[...]`` as in shell patterns), in topology order. A plain name that is not declared,
    or a pattern matching nothing, is an error: a typo must not archive nothing quietly."""
    declared = list(catalogue)
    chosen: dict[str, CatalogueTopic] = {}
    for pattern in (p.strip() for p in patterns):
        if not pattern:
            continue
        matches = [t for t in declared if fnmatchcase(t.logical, pattern)]
        if not matches:
            what = "pattern" if _WILDCARDS & set(pattern) else "topic"
            known = ", ".join(t.logical for t in declared)
            raise ArchiveError(f"{what} {pattern!r} matches no declared topic (declared: {known})")
        for topic in matches:
            chosen.setdefault(topic.logical, topic)
    if not chosen:
        raise ArchiveError("no topics to archive")
    if any(t.name == PARTIAL_DIR for t in chosen.values()):
        raise ArchiveError(f"a topic named {PARTIAL_DIR!r} cannot be archived (reserved)")
    return [t for t in declared if t.logical in chosen]
