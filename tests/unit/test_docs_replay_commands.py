"""The `replay model` command lines the docs and settings give are ones the command takes.

A new user ran docs/learning.md's warm start, `replay model ctr --shadow history --publish`,
and the command refused it ("--publish and --shadow: choose one"): nothing was published,
and the learner told to start from `ctr@history` started cold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamlearn.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMMAND = re.compile(r"`(?:streamlearn )?replay model [^`]*`")


def _texts() -> dict[str, str]:
    texts = {str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "docs").glob("*.md")}
    texts["README.md"] = (ROOT / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        texts[f"settings.{name}"] = field.description or ""
    return {where: " ".join(text.split()) for where, text in texts.items()}


def test_no_replay_model_command_given_asks_for_both_publish_and_a_shadow() -> None:
    commands = [(where, c) for where, text in _texts().items() for c in COMMAND.findall(text)]
    assert any("--shadow history" in c for _, c in commands), "the warm start's command"
    both = [(where, c) for where, c in commands if "--publish" in c and "--shadow" in c]
    assert both == []
