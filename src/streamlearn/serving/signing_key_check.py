"""The prediction worker's one required secret, checked without the serving package's
imports (River, SciPy, NumPy): ``serve`` refuses a missing key before loading them."""

from __future__ import annotations

from streamlearn.exceptions import ConfigurationError
from streamlearn.settings import Settings


def require_signing_key(settings: Settings) -> None:
    """Raise ConfigurationError, naming the setting and how to make a key, when
    ``settings`` has no model signing key: a worker could verify no snapshot."""
    key = settings.model_signing_key
    if key is None or not key.get_secret_value():
        raise ConfigurationError(
            "a prediction worker needs STREAMLEARN_MODEL_SIGNING_KEY, the learner's key "
            "(a new one: `python -c 'import secrets; print(secrets.token_hex(32))'`; `up` "
            "makes one in its data directory)"
        )
