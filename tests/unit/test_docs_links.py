"""Every link from one doc to another (``[text](file.md#section)``) reaches a file and a
heading that exist.

Found upgrading a deployment: docs/deploy.md said of growing partitions "keys move then,
see the README's operations section", which says nothing of it; what growing partitions
does to running agents was written nowhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(((?:\.\./)?[\w./-]*\.md)?(?:#([\w-]+))?\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


def _broken() -> list[str]:
    broken = []
    for source in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]:
        for target, anchor in LINK.findall(FENCE.sub("", source.read_text())):
            if not target and not anchor:
                continue
            path = (source.parent / target).resolve() if target else source
            if not path.is_file():
                broken.append(f"{source.name}: {target} (no such file)")
            elif anchor and anchor not in _anchors(path):
                broken.append(f"{source.name}: {target}#{anchor} (no such heading)")
    return broken


def test_links_between_docs_reach_their_file_and_heading() -> None:
    assert _broken() == []


def test_growing_partitions_is_linked_to_what_it_does() -> None:
    deploy = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    assert "[docs/topics.md](topics.md#growing-partitions-of-a-running-deployment)" in deploy
