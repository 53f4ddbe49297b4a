"""The README's architecture picture is rendered from its source (docs/architecture.dot)."""

from __future__ import annotations

import html
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_rendered_picture_shows_every_label_of_its_source() -> None:
    source = (DOCS / "architecture.dot").read_text()
    picture = html.unescape((DOCS / "architecture.svg").read_text())
    shown = set(re.findall(r"<text[^>]*>([^<]*)</text>", picture))
    lines = {
        line
        for label in re.findall(r'label="([^"]*)"', source)
        for line in label.split("\\n")
        if line
    }
    assert len(lines) > 20
    missing = sorted(lines - shown)
    assert not missing, f"re-render with scripts/render_architecture; missing: {missing}"


def test_the_picture_names_every_topic_of_the_loop() -> None:
    source = (DOCS / "architecture.dot").read_text()
    for topic in ("telemetry.events", "telemetry.feedback", "telemetry.predictions",
                  "events.clean", "events.sessions", "events.rejected", "training.examples",
                  "model.state", "model.metrics", "experiments"):  # fmt: skip
        assert f'label="{topic}' in source, topic
