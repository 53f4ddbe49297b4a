"""The agents: each one a step (:mod:`streamlearn.runtime.step`) made from its environment.

A new agent is a :class:`~streamlearn.runtime.step.Step` subclass in its own module and a
line in :data:`STEPS`; ``streamlearn agents run --only NAME`` and ``streamlearn up`` run it.

Each factory imports its agent's module when it is called: a process runs one agent (``up``
starts one per agent), and importing them all cost every process the learner's River and
SciPy (~2 s of CPU each here) whether it learns or not.
"""

from __future__ import annotations

from collections.abc import Callable

from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.step import Step


def _preprocess(env: StepEnvironment) -> Step:
    from streamlearn.agents.preprocess import PreprocessStep

    return PreprocessStep(env.settings, env.metrics)


def _sessionise(env: StepEnvironment) -> Step:
    from streamlearn.agents.sessionise import SessioniseStep

    return SessioniseStep(env.settings, env.metrics)


def _label_join(env: StepEnvironment) -> Step:
    from streamlearn.agents.label_join import LabelJoinStep
    from streamlearn.models.configured import configured_specs

    return LabelJoinStep(env.settings, env.metrics, configured_specs(env.settings))


def _learner(env: StepEnvironment) -> Step:
    from streamlearn.agents.learner import make_learner

    return make_learner(env)


def _monitor(env: StepEnvironment) -> Step:
    from streamlearn.agents.monitor import make_monitor

    return make_monitor(env)


STEPS: dict[str, Callable[[StepEnvironment], Step]] = {
    "preprocess": _preprocess,
    "sessionise": _sessionise,
    "label-join": _label_join,
    "learner": _learner,
    "monitor": _monitor,
}
AGENT_NAMES = tuple(STEPS)
PIPELINE_AGENTS = ("preprocess", "sessionise", "label-join", "learner")
"""What `agents run` runs without --only: each reads its own topics, so one worker (one
consumer group) can run them all; the monitor reads theirs and runs on its own."""

__all__ = ["AGENT_NAMES", "PIPELINE_AGENTS", "STEPS"]
