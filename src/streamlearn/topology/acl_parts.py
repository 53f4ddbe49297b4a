"""The parts streamlearn ships and what each touches on Kafka (:class:`PartAccess`).

Agents come from their step declarations (``inputs``, ``outputs``, whether they publish
rejections), run as ``up`` and the Helm chart run them: one Faust worker per agent, app id
``streamlearn-<agent>``. The services' topics are the ones their code names:

- ``collector``: produces ``telemetry.events`` and ``telemetry.feedback``
  (:mod:`streamlearn.collector.app`);
- ``serve`` (prediction workers): follows ``model.state`` and ``experiments`` without a
  consumer group (``experiments`` through a fresh ``<prefix>streamlearn-experiments-<id>`` id it
  never commits), produces ``telemetry.predictions`` and ``monitoring.alerts``
  (:mod:`streamlearn.serving.telemetry`);
- ``registry``: reads, writes and if missing creates ``_schemas``;
- ``archive``: its default topics in its group (:mod:`streamlearn.archive.config`);
- ``dashboard``: follows :data:`~streamlearn.dashboard.state.FOLLOWED` and samples the end
  offsets of the pipeline's topics;
- ``ops``: the operator's ``topics apply`` on every declared topic.

``replay`` and ``acls apply`` are not parts: replays read everything and write a shadow
namespace, and applying ACLs needs ``ALTER`` on the cluster; run them as the operator.
"""

from __future__ import annotations

from streamlearn.topology.acls import PartAccess
from streamlearn.topology.model import Topology

AGENT_GROUP = "streamlearn-{agent}"
"""The Faust app id (consumer group) of an agent's workers, as ``up`` and the chart name it."""
REJECTED = "events.rejected"


def agent_access(
    name: str, inputs: tuple[str, ...], outputs: tuple[str, ...], publishes_rejections: bool
) -> PartAccess:
    """An agent's access: its inputs read, its outputs (and rejections) written, its Faust
    group and internal topics."""
    from streamlearn.runtime.topic_reader import READER_GROUP

    writes = outputs + ((REJECTED,) if publishes_rejections and REJECTED not in outputs else ())
    return PartAccess(
        part=name,
        reads=inputs + (("model.state",) if name == "learner" else ()),
        writes=writes,
        faust_groups=(AGENT_GROUP.format(agent=name),),
        # the topic reader's group (assigned, never committed): it reads model.state at start
        groups=(READER_GROUP,) if name == "learner" else (),
    )


def agent_parts() -> list[PartAccess]:
    """Every agent's access, from the step classes' declarations."""
    from streamlearn.agents import AGENT_NAMES
    from streamlearn.agents.label_join import LabelJoinStep
    from streamlearn.agents.learner import LearnerStep
    from streamlearn.agents.monitor import MonitorStep
    from streamlearn.agents.preprocess import PreprocessStep
    from streamlearn.agents.sessionise import SessioniseStep

    classes = {
        step.name: step
        for step in (PreprocessStep, SessioniseStep, LabelJoinStep, LearnerStep, MonitorStep)
    }
    missing = sorted(set(AGENT_NAMES) - set(classes))
    if missing:  # an agent added to STEPS without a line here would run without ACLs
        raise RuntimeError(f"agents {missing} have no ACL derivation in acl_parts.py")
    return [
        agent_access(name, cls.inputs, cls.outputs, cls.publishes_rejections)
        for name, cls in ((name, classes[name]) for name in AGENT_NAMES)
    ]


def service_parts(topology: Topology) -> list[PartAccess]:
    """The services' and the operator's access."""
    from streamlearn.archive.config import DEFAULT_GROUP as ARCHIVE_GROUP
    from streamlearn.archive.topics import DEFAULT_TOPICS, select_topics
    from streamlearn.dashboard.follower import GROUP_PREFIX as DASHBOARD_GROUP_PREFIX
    from streamlearn.dashboard.state import FOLLOWED, PIPELINE
    from streamlearn.serving.experiment_topic import GROUP_PREFIX as EXPERIMENTS_GROUP_PREFIX
    from streamlearn.topology.catalogue import TopicCatalogue

    declared = [topic.name for topic in topology.topics]
    archived = select_topics(DEFAULT_TOPICS, TopicCatalogue(topology))
    return [
        PartAccess("collector", writes=("telemetry.events", "telemetry.feedback")),
        PartAccess(
            "serve",
            reads=("model.state", "experiments"),
            writes=("telemetry.predictions", "monitoring.alerts"),
            group_prefixes=(EXPERIMENTS_GROUP_PREFIX,),
        ),
        PartAccess("registry", reads=("_schemas",), writes=("_schemas",), creates=("_schemas",)),
        PartAccess("archive", reads=tuple(t.logical for t in archived), groups=(ARCHIVE_GROUP,)),
        PartAccess(
            "dashboard",
            reads=FOLLOWED,
            describes=tuple(topic for _, topic in PIPELINE),
            group_prefixes=(DASHBOARD_GROUP_PREFIX,),
        ),
        PartAccess("ops", manages=tuple(declared)),
    ]


def shipped_parts(topology: Topology) -> list[PartAccess]:
    """Every part of streamlearn, agents first."""
    return [*agent_parts(), *service_parts(topology)]


PART_NAMES = (
    "preprocess",
    "sessionise",
    "label-join",
    "learner",
    "monitor",
    "collector",
    "serve",
    "registry",
    "archive",
    "dashboard",
    "ops",
)
"""The parts' names without importing the agents (the embedded broker makes a user each;
a unit test checks it against :func:`shipped_parts`)."""
