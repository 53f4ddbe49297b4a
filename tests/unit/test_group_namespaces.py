"""Every consumer group a part names is in its deployment's namespace
(``STREAMLEARN_TOPIC_PREFIX``), as its topics are: the ACLs `acls plan` grants a part for
its groups then cover its own deployment's groups only, never those of another deployment
on the same cluster. The learner's topic reader, the experiments reader and the dashboard's
follower named theirs outside the namespace (``streamlearn-topic-reader``, ...)."""

from __future__ import annotations

from typing import Any

import pytest

from streamlearn.dashboard import follower
from streamlearn.dashboard.metrics import DashboardMetrics
from streamlearn.runtime import topic_reader
from streamlearn.serving import experiment_topic
from streamlearn.settings import Settings
from streamlearn.topology.acl_parts import shipped_parts
from streamlearn.topology.acls import GROUP, PREFIXED, plan_acls, principals
from streamlearn.topology.catalogue import SHIPPED_TOPOLOGY
from streamlearn.topology.loader import load_topology
from streamlearn.topology.namespace import Namespace

PREFIX = "team-a."


class ConsumerMadeError(Exception):
    """Raised by the stand-in consumer once it has the configuration it was given."""


def _group_given(monkeypatch: pytest.MonkeyPatch, module: Any, call: Any) -> str:
    configs: list[dict[str, Any]] = []

    def consumer(config: dict[str, Any]) -> Any:
        configs.append(config)
        raise ConsumerMadeError

    monkeypatch.setattr(module, "Consumer", consumer)
    with pytest.raises(ConsumerMadeError):
        call()
    return str(configs[0]["group.id"])


def _granted(group: str) -> bool:
    """Whether the plan of deployment ``PREFIX`` grants a part ``READ`` on ``group``."""
    topology = load_topology(SHIPPED_TOPOLOGY)
    parts = shipped_parts(topology)
    entries = plan_acls(
        parts, topology, Namespace(PREFIX), principals([p.part for p in parts])
    )  # fmt: skip
    return any(
        acl.resource_type == GROUP
        and (group.startswith(acl.name) if acl.pattern_type == PREFIXED else group == acl.name)
        for acl in entries
    )


def test_the_learners_topic_reader_uses_a_group_of_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(topic_prefix=PREFIX)
    group = _group_given(
        monkeypatch, topic_reader,
        lambda: list(topic_reader.read_ranges(settings, PREFIX + "model.state", {0: (0, 1)})),
    )  # fmt: skip
    assert group == PREFIX + "streamlearn-topic-reader"
    assert _granted(group)


def test_the_experiments_reader_uses_a_group_of_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(topic_prefix=PREFIX)
    group = _group_given(
        monkeypatch, experiment_topic,
        lambda: experiment_topic.read_experiments(settings, registry=None),  # type: ignore[arg-type]
    )  # fmt: skip
    assert group.startswith(PREFIX + "streamlearn-experiments-")
    assert _granted(group)


def test_the_dashboards_follower_uses_a_group_of_its_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader = follower.TopicFollower(
        Settings(topic_prefix=PREFIX),
        None,  # type: ignore[arg-type]
        deliver=lambda _: None, report=lambda _: None, metrics=DashboardMetrics(),
    )  # fmt: skip
    group = _group_given(monkeypatch, follower, reader._consumer)
    assert group.startswith(PREFIX + "streamlearn-dashboard-")
    assert _granted(group)
