"""Topics as code: ``topology/topics.yaml`` loaded, compared with a cluster and applied."""

from streamlearn.topology.admin import apply_plan, apply_topology, plan_for_cluster, read_existing
from streamlearn.topology.exceptions import RefusedChangeError, TopologyApplyError, TopologyError
from streamlearn.topology.loader import load_topology, parse_topology
from streamlearn.topology.model import TopicSpec, Topology
from streamlearn.topology.plan import Plan, desired_topics, plan_changes

__all__ = [
    "Plan",
    "RefusedChangeError",
    "TopicSpec",
    "Topology",
    "TopologyApplyError",
    "TopologyError",
    "apply_plan",
    "apply_topology",
    "desired_topics",
    "load_topology",
    "parse_topology",
    "plan_changes",
    "plan_for_cluster",
    "read_existing",
]
