"""What ``agents run`` checks of its settings before it loads Faust and the agents (River,
SciPy, NumPy: seconds to import), so a missing key or unknown model is said at once."""

from __future__ import annotations

from collections.abc import Collection

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.configured import configured_specs
from streamlearn.settings import Settings
from streamlearn.settings_values import SigningKey

# The agents that build the configured models' specs (label-join, the learner, the monitor).
_MODEL_AGENTS = frozenset({"label-join", "learner", "monitor"})

LEARNER_NEEDS_A_KEY = (
    "the learner signs snapshots: set STREAMLEARN_MODEL_SIGNING_KEY (a new one: `python -c "
    "'import secrets; print(secrets.token_hex(32))'`; the prediction workers need the same key)"
)


def require_learner_key(settings: Settings) -> SigningKey:
    """The key the learner signs with; ConfigurationError when there is none."""
    key = settings.model_signing_key
    if key is None or not key.get_secret_value():
        raise ConfigurationError(LEARNER_NEEDS_A_KEY)
    return key


def check_agents_settings(settings: Settings, chosen: Collection[str]) -> None:
    """Raise ConfigurationError for what the ``chosen`` agents would refuse as they start."""
    if "learner" in chosen:
        require_learner_key(settings)
    if _MODEL_AGENTS.intersection(chosen):
        configured_specs(settings)
