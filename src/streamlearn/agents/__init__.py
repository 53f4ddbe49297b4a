"""The agents: each one a step (:mod:`streamlearn.runtime.step`) made from its environment.

A new agent is a :class:`~streamlearn.runtime.step.Step` subclass in its own module and a
line in :data:`STEPS`; ``streamlearn agents run --only NAME`` and ``streamlearn up`` run it.
"""

from __future__ import annotations

from collections.abc import Callable

from streamlearn.agents.label_join import LabelJoinStep
from streamlearn.agents.learner import make_learner
from streamlearn.agents.monitor import make_monitor
from streamlearn.agents.preprocess import PreprocessStep
from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.models.configured import configured_specs
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.step import Step

STEPS: dict[str, Callable[[StepEnvironment], Step]] = {
    "preprocess": lambda env: PreprocessStep(env.settings, env.metrics),
    "sessionise": lambda env: SessioniseStep(env.settings, env.metrics),
    "label-join": lambda env: LabelJoinStep(
        env.settings, env.metrics, configured_specs(env.settings)
    ),
    "learner": make_learner,
    "monitor": make_monitor,
}
AGENT_NAMES = tuple(STEPS)
PIPELINE_AGENTS = ("preprocess", "sessionise", "label-join", "learner")
"""What `agents run` runs without --only: each reads its own topics, so one worker (one
consumer group) can run them all; the monitor reads theirs and runs on its own."""

__all__ = ["AGENT_NAMES", "PIPELINE_AGENTS", "STEPS"]
