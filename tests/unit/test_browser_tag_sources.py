"""The browser tag's own tests (node's test runner, over js/src) and its build: the file the
collector serves is exactly what js/src builds to, within the size goal."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from importlib.resources import files
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[2] / "js"
# Minified + gzipped (level 9): 6 KiB, the tag's stated goal. The check that a cookieDomain
# covers the page's host took it from 6,136 bytes to 6,237 (and the goal to 6,400 for a
# day); shorter code, no behaviour lost, brought it back to 6,129 (2026-12-07).
SIZE_GOAL_BYTES = 6144


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: run ./scripts/bootstrap_browser")
    return node


def test_the_tags_unit_tests_pass() -> None:
    result = subprocess.run(
        [_node(), "--test", "test/"], cwd=JS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout


def test_the_served_tag_is_the_build_of_its_sources_and_small() -> None:
    if not (JS / "node_modules" / "esbuild").exists():
        pytest.fail("esbuild is missing: run ./scripts/bootstrap_browser")
    result = subprocess.run(
        [_node(), "build.mjs", "--check"], cwd=JS, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    served = files("streamlearn.collector").joinpath("static/streamlearn.js").read_bytes()
    assert len(gzip.compress(served, compresslevel=9)) <= SIZE_GOAL_BYTES


def test_docs_say_the_tags_size() -> None:
    """docs/browser.md said "about 10 KB minified, 4.3 KB gzipped" of a tag served at
    13,932 bytes, 5,692 gzipped (found by a new user): the figures stay within a tenth."""
    docs = (JS.parent / "docs" / "browser.md").read_text()
    said = re.search(r"about ([\d.]+) KB minified, ([\d.]+) KB gzipped", docs)
    assert said is not None
    served = files("streamlearn.collector").joinpath("static/streamlearn.js").read_bytes()
    for stated, actual in ((said[1], len(served)), (said[2], len(gzip.compress(served, 9)))):
        assert abs(float(stated) * 1000 - actual) <= actual / 10, (stated, actual)


def test_the_tag_calls_empty_the_text_the_collector_calls_empty() -> None:
    """Found by a new user: `streamlearn('track', '\\u0085')` was queued (JavaScript's trim
    keeps U+0085 and U+001C..U+001F, Python's strip removes them), the collector refused
    the beacon's whole request for it, and every event sent with it was lost."""
    import json
    import sys

    candidates = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    candidates += ["\ufeff", "\u200b", "x", " x "]
    script = (
        "import('./src/items.js').then(({problemOf}) => {"
        "const texts = JSON.parse(process.argv[1]);"
        "console.log(JSON.stringify(texts.map((t) => problemOf("
        "{event_type: t, user_id: 'u', properties: {}, context: {}}))));})"
    )
    result = subprocess.run(
        [_node(), "-e", script, json.dumps(candidates)],
        cwd=JS, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    verdicts = json.loads(result.stdout)
    for text, verdict in zip(candidates, verdicts, strict=True):
        refused_by_collector = not text.strip()  # collector/mapping.py's rule
        assert (verdict == "event_type must not be empty") == refused_by_collector, (
            f"U+{ord(text[0]):04X}",
            verdict,
        )
