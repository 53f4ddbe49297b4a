#!/usr/bin/env python3
"""Write deploy/helm/streamlearn/values.schema.json from the settings (streamlearn.deploy),
and the values reference in docs/deploy.md."""

from __future__ import annotations

import re
from pathlib import Path

from streamlearn.deploy.values_reference import REFERENCE_END, REFERENCE_START, values_reference
from streamlearn.deploy.values_schema import render

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "deploy/helm/streamlearn/values.schema.json"
DOCS = ROOT / "docs/deploy.md"

text = render()
changed = not SCHEMA.exists() or SCHEMA.read_text() != text
SCHEMA.write_text(text)
print(SCHEMA.name, "updated" if changed else "already current")

docs = DOCS.read_text()
section = f"{REFERENCE_START}\n\n{values_reference()}\n{REFERENCE_END}"
pattern = re.escape(REFERENCE_START) + ".*?" + re.escape(REFERENCE_END)
updated = re.sub(pattern, lambda _: section, docs, count=1, flags=re.DOTALL)
DOCS.write_text(updated)
print(DOCS.name, "updated" if updated != docs else "already current")
