"""Which settings are secrets: those whose type holds a :class:`~pydantic.SecretStr`
(a key, a password, a token, a write key). They print masked, never reach a ConfigMap
(the Helm chart's ``secretConfig``), and each part is given only the ones it uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from pydantic import SecretStr

from streamlearn.settings import Settings


def is_secret(annotation: Any) -> bool:
    """Whether a setting's type holds a :class:`~pydantic.SecretStr` anywhere."""
    return annotation is SecretStr or any(is_secret(a) for a in get_args(annotation))


SECRET_SETTING_NAMES = frozenset(
    name for name, field in Settings.model_fields.items() if is_secret(field.annotation)
)
"""Every secret setting, by field name."""


def signing_environment(settings: Settings) -> dict[str, str]:
    """The signing settings a process resolved (the data directory's key or its rotation:
    the previous key too, until its grace ends), for the environment of the children that
    sign or verify (``up``'s parts, a replay's learner)."""
    values = {
        "MODEL_SIGNING_KEY": settings.model_signing_key,
        "MODEL_SIGNING_KEY_ID": settings.model_signing_key_id,
        "MODEL_PREVIOUS_SIGNING_KEY": settings.model_previous_signing_key,
        "MODEL_PREVIOUS_SIGNING_KEY_ID": settings.model_previous_signing_key_id,
        "MODEL_PREVIOUS_SIGNING_KEY_UNTIL": settings.model_previous_signing_key_until,
    }
    env = {}
    for name, value in values.items():
        if isinstance(value, SecretStr):
            env[f"STREAMLEARN_{name}"] = value.get_secret_value()
        elif isinstance(value, datetime):
            env[f"STREAMLEARN_{name}"] = value.isoformat()
        elif value is not None:
            env[f"STREAMLEARN_{name}"] = str(value)
    return env
