"""What differs between two models' spec texts, said by path and by the setting behind it.

A snapshot records its spec as text (JSON). A process refuses a snapshot whose text is not
its own spec's; the texts mostly differ by a setting (the label horizon). Both texts whole
were ~900 characters to compare by eye, in a worker's log line for every version and in
``replay model``'s refusal.
"""

from __future__ import annotations

import json
from typing import Any


def spec_differences(theirs: str, ours: str) -> list[str]:
    """What differs between two spec texts (JSON objects), by dotted path, sorted: ``label.
    horizon_s 20 there, 1800 here``. Both texts whole were ~900 characters to compare by eye."""
    try:
        there, here = _leaves(json.loads(theirs)), _leaves(json.loads(ours))
    except ValueError:
        return ["the spec text (not JSON)"]
    return [
        f"{path} {_shown(there, path)} there, {_shown(here, path)} here"
        for path in sorted(there.keys() | here.keys())
        if there.get(path, _ABSENT) != here.get(path, _ABSENT)
    ]


_ABSENT = object()


def _leaves(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        leaves: dict[str, Any] = {}
        for key, inner in value.items():
            leaves.update(_leaves(inner, f"{path}.{key}" if path else str(key)))
        return leaves
    return {path: value}


def _shown(leaves: dict[str, Any], path: str) -> str:
    if path not in leaves:
        return "absent"
    value = leaves[path]
    return f"{value:g}" if isinstance(value, float) else json.dumps(value)


def setting_hint(theirs: str) -> str:
    """The setting that gives spec text ``theirs``, as text to append: `` (STREAMLEARN_LABEL_
    HORIZON_S=20?)``, or nothing when the text names no horizon."""
    try:
        horizon = json.loads(theirs)["label"]["horizon_s"]
        return f" (STREAMLEARN_LABEL_HORIZON_S={horizon:g}?)"
    except (ValueError, TypeError, KeyError):
        return ""
