"""The model-signing key a command needs, checked before the slow imports (River, SciPy,
NumPy, Faust): ``serve`` and ``agents run --only learner`` refuse a missing key at once."""

from __future__ import annotations

from streamlearn.exceptions import ConfigurationError
from streamlearn.settings import Settings
from streamlearn.settings_values import SigningKey

NEW_KEY = "`python -c 'import secrets; print(secrets.token_hex(32))'`"
"""How to make a key by hand (``up`` makes one in its data directory)."""


def require_signing_key(settings: Settings, need: str) -> SigningKey:
    """``settings``' signing key; ConfigurationError saying ``need`` (why this command
    needs one, and who else holds it) and how to make one when there is none."""
    key = settings.model_signing_key
    if key is None or not key.get_secret_value():
        raise ConfigurationError(
            f"{need}: set STREAMLEARN_MODEL_SIGNING_KEY (a new one: {NEW_KEY}; `up` makes "
            "one in its data directory)"
        )
    return key


LEARNER_NEED = "the learner signs snapshots, and the prediction workers need the same key"
WORKER_NEED = "a prediction worker verifies snapshots with the learner's key"
