#!/usr/bin/env python3
"""Regenerate the README's configuration table from the settings (`streamlearn config docs`)."""

from __future__ import annotations

import re
from pathlib import Path

from streamlearn.settings_table import settings_table

README = Path(__file__).resolve().parents[1] / "README.md"

text = README.read_text()
updated = re.sub(
    r"\| environment variable \| default \| description \|\n(?:\|.*\|\n)+",
    lambda _: settings_table(),
    text,
    count=1,
)
README.write_text(updated)
print("README configuration table", "updated" if updated != text else "already current")
