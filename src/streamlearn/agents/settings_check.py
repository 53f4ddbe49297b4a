"""What ``agents run`` checks of its settings before it loads Faust and the agents (River,
SciPy, NumPy: seconds to import), so a missing key or unknown model is said at once."""

from __future__ import annotations

from collections.abc import Collection

from streamlearn.models.configured import configured_specs
from streamlearn.settings import Settings
from streamlearn.signing_key_check import LEARNER_NEED, require_signing_key

# The agents that build the configured models' specs (label-join, the learner, the monitor).
_MODEL_AGENTS = frozenset({"label-join", "learner", "monitor"})


def check_agents_settings(settings: Settings, chosen: Collection[str]) -> None:
    """Raise ConfigurationError for what the ``chosen`` agents would refuse as they start."""
    if "learner" in chosen:
        require_signing_key(settings, LEARNER_NEED)
    if _MODEL_AGENTS.intersection(chosen):
        configured_specs(settings)
