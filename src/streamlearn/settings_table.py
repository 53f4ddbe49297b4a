"""The README's configuration table, generated from the settings' descriptions
(``scripts/update_readme_config.py`` writes it; ``streamlearn config docs`` prints it)."""

from __future__ import annotations

import json
from pathlib import Path

from streamlearn.settings import CONFIG_FILE_ENV, ENV_PREFIX, WITHHELD_ENV, Settings


def settings_table() -> str:
    """The configuration table of the README, generated from the settings' docstrings."""
    rows = ["| environment variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            made = field.default_factory()  # type: ignore[call-arg]
            if isinstance(made, Path):  # under the user's home or cache
                default = "(per user, see description)"
            else:
                default = "(empty)" if not made else f"`{json.dumps(made)}`"
        elif field.default is None:
            default = "(unset)"
        elif field.default == "":
            default = "(empty)"
        else:
            default = f"`{field.default}`"
        description = " ".join((field.description or "").split())  # one table row
        rows.append(f"| `{ENV_PREFIX}{name.upper()}` | {default} | {description} |")
    rows.append(
        f"| `{CONFIG_FILE_ENV}` | (unset) | Optional YAML file with any of the settings above "
        "(lower priority than the environment). |"
    )
    rows.append(
        f"| `{WITHHELD_ENV}` | (unset) | Settings (names, comma-separated) read from no source "
        "(environment, `.env`, config file): what `up` gives each part for the secrets it does "
        "not use. |"
    )
    return "\n".join(rows) + "\n"
