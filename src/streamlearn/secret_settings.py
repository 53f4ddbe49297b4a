"""Which settings are secrets: those whose type holds a :class:`~pydantic.SecretStr`
(a key, a password, a token, a write key). They print masked, never reach a ConfigMap
(the Helm chart's ``secretConfig``), and each part is given only the ones it uses."""

from __future__ import annotations

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
