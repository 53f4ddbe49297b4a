"""ACLs derived from the topology, without a broker: the pure derivation, the shipped
parts' plan, the CLI's plan and the AdminClient side against a fake admin."""

from __future__ import annotations

import json
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AclBinding, AclOperation
from typer.testing import CliRunner

from streamlearn.agents import AGENT_NAMES
from streamlearn.cli import app as cli
from streamlearn.topology import load_topology, parse_topology
from streamlearn.topology.acl_admin import AclApplyError, apply_acls, binding, wait_visible
from streamlearn.topology.acl_parts import PART_NAMES, shipped_parts
from streamlearn.topology.acls import (
    Acl,
    PartAccess,
    acls_for,
    describe_table,
    plan_acls,
    principals,
)
from streamlearn.topology.catalogue import SHIPPED_TOPOLOGY
from streamlearn.topology.exceptions import TopologyError
from streamlearn.topology.namespace import Namespace

TOPOLOGY = parse_topology(
    """
version: 1
topics:
  - {name: in, key: k, value_schema: A, cleanup_policy: delete, retention: 1d}
  - {name: out, key: k, value_schema: A, cleanup_policy: delete, retention: 1d}
"""
)


def _entries(access: PartAccess, prefix: str = "") -> set[tuple[str, ...]]:
    return {
        (a.resource_type, a.name, a.pattern_type, a.operation)
        for a in acls_for(access, "User:p", TOPOLOGY, Namespace(prefix))
    }


def test_each_kind_of_access_becomes_its_operations_in_the_namespace() -> None:
    access = PartAccess(
        "p", reads=("in",), writes=("out",), groups=("g",), faust_groups=("app",),
        group_prefixes=("fresh-",),
    )  # fmt: skip
    assert _entries(access, "ns.") == {
        ("TOPIC", "ns.in", "LITERAL", "READ"),
        ("TOPIC", "ns.in", "LITERAL", "DESCRIBE"),
        ("TOPIC", "ns.out", "LITERAL", "WRITE"),
        ("TOPIC", "ns.out", "LITERAL", "DESCRIBE"),
        ("GROUP", "ns.g", "LITERAL", "READ"),
        ("GROUP", "ns.app", "LITERAL", "READ"),
        *(
            ("TOPIC", "ns.app-", "PREFIXED", op)
            for op in ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "READ", "WRITE")
        ),
        ("GROUP", "ns.fresh-", "PREFIXED", "READ"),
    }
    assert all(a.permission == "ALLOW" and a.host == "*" for a in acls_for(
        access, "User:p", TOPOLOGY, Namespace()))  # fmt: skip


def test_only_declared_topics_are_granted() -> None:
    with pytest.raises(TopologyError, match="part p uses topic 'nope'"):
        acls_for(PartAccess("p", reads=("nope",)), "User:p", TOPOLOGY, Namespace())


def test_principals_by_prefix_or_override_and_checked() -> None:
    assert principals(["a", "b"], "User:x-", {"b": "User:web"}) == {
        "a": "User:x-a",
        "b": "User:web",
    }
    with pytest.raises(TopologyError, match="unknown parts"):
        principals(["a"], overrides={"c": "User:c"})
    with pytest.raises(TopologyError, match="Type:name"):
        principals(["a"], prefix="streamlearn-")


def _shipped() -> dict[str, set[tuple[str, str, str, str]]]:
    topology = load_topology(SHIPPED_TOPOLOGY)
    plan = plan_acls(shipped_parts(topology), topology, Namespace(), principals(PART_NAMES))
    by_part: dict[str, set[tuple[str, str, str, str]]] = {part: set() for part in PART_NAMES}
    for acl in plan:
        part = acl.principal.removeprefix("User:streamlearn-")
        by_part[part].add((acl.resource_type, acl.name, acl.pattern_type, acl.operation))
    return by_part


def test_the_shipped_parts_get_what_their_code_uses_and_no_more() -> None:
    topology = load_topology(SHIPPED_TOPOLOGY)
    assert [p.part for p in shipped_parts(topology)] == list(PART_NAMES)
    assert set(AGENT_NAMES) <= set(PART_NAMES)
    plan = _shipped()

    def topics(part: str, operation: str) -> set[str]:
        return {name for kind, name, _, op in plan[part] if kind == "TOPIC" and op == operation}

    assert topics("preprocess", "READ") == {"telemetry.events", "streamlearn-preprocess-"}
    assert topics("preprocess", "WRITE") == {
        "events.clean",
        "events.rejected",
        "streamlearn-preprocess-",
    }
    assert ("GROUP", "streamlearn-preprocess", "LITERAL", "READ") in plan["preprocess"]
    assert topics("collector", "READ") == set()
    assert topics("collector", "WRITE") == {"telemetry.events", "telemetry.feedback"}
    assert topics("serve", "READ") == {"model.state", "experiments"}
    # The monitor observes what other agents reject from: it writes no rejections.
    assert "events.rejected" not in topics("monitor", "WRITE")
    writers_of_state = {part for part in PART_NAMES if "model.state" in topics(part, "WRITE")}
    assert writers_of_state == {"learner"}, "only the learner publishes models"
    creators = {part: topics(part, "CREATE") for part in PART_NAMES}
    assert creators["ops"] == {t.name for t in topology.topics}
    assert creators["registry"] == {"_schemas"}
    for part in AGENT_NAMES:
        assert creators[part] == {f"streamlearn-{part}-"}, "agents create only their own"
    assert not any(op == "ALTER" for part in PART_NAMES if part != "ops" for *_, op in plan[part])


def test_the_plan_command_prints_a_table_or_json_without_a_cluster() -> None:
    result = CliRunner().invoke(
        cli, ["acls", "plan", "--part", "collector", "--json", "--principal", "collector=User:web"]
    )
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert {e["principal"] for e in entries} == {"User:web"}
    assert {(e["name"], e["operation"]) for e in entries} == {
        ("telemetry.events", "WRITE"), ("telemetry.events", "DESCRIBE"),
        ("telemetry.feedback", "WRITE"), ("telemetry.feedback", "DESCRIBE"),
    }  # fmt: skip
    table = CliRunner().invoke(cli, ["acls", "plan", "--part", "registry"], env={
        "STREAMLEARN_TOPIC_PREFIX": "t1."})  # fmt: skip
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == [
        "principal", "resource_type", "name", "pattern_type", "operation", "permission",
    ]  # fmt: skip
    assert "User:streamlearn-registry  TOPIC          t1._schemas" in table.output
    unknown = CliRunner().invoke(cli, ["acls", "plan", "--part", "nope"])
    assert unknown.exit_code == 1
    assert "unknown parts ['nope']" in unknown.output
    # Found by a new user: the second of two principals for one part won silently.
    twice = CliRunner().invoke(
        cli, ["acls", "plan", "--principal", "serve=User:a", "--principal", "serve=User:b"]
    )
    assert twice.exit_code == 2
    assert "part 'serve' given twice" in twice.output


def test_parts_are_taken_as_a_comma_list_as_other_commands_take_them() -> None:
    """Found by a new user: `acls plan --part serve,collector` was "unknown parts
    ['serve,collector']" (`agents run --only` and `replay agents --only` take lists)."""
    listed = CliRunner().invoke(cli, ["acls", "plan", "--json", "--part", "serve,collector"])
    repeated = CliRunner().invoke(
        cli, ["acls", "plan", "--json", "--part", "serve", "--part", "collector"]
    )
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == json.loads(repeated.output)
    assert {e["principal"] for e in json.loads(listed.output)} == {
        "User:streamlearn-serve", "User:streamlearn-collector"}  # fmt: skip


def test_describe_table_aligns_columns() -> None:
    rows = describe_table([Acl("User:a", "TOPIC", "t", "LITERAL", "READ")]).splitlines()
    assert rows[1].split() == ["User:a", "TOPIC", "t", "LITERAL", "READ", "ALLOW"]
    assert rows[0].index("resource_type") == rows[1].index("TOPIC")


class FakeAdmin:
    """What AdminClient answers: the ACLs it holds, or an error for every request."""

    def __init__(
        self,
        held: list[Acl],
        error: int | None = None,
        may_describe: bool = True,
        listed_after: int | None = 0,
        authorizer: str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    ) -> None:
        self.held = [binding(acl) for acl in held]
        self.authorizer = authorizer
        self.error = error
        self.may_describe = may_describe
        self.created: list[AclBinding] = []
        self.listed_after = listed_after
        """Listings before what was created is listed (a broker's metadata lagging the
        controller); None: never."""

    def _future(self, value: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if self.error is None:
            future.set_result(value)
        else:
            future.set_exception(KafkaException(KafkaError(self.error)))
        return future

    def describe_acls(self, _filter: Any, request_timeout: float) -> Future[Any]:
        if self.listed_after is not None:
            if self.listed_after == 0:
                self.held += [b for b in self.created if b not in self.held]
            else:
                self.listed_after -= 1
        return self._future(list(self.held))

    def describe_cluster(self, include_authorized_operations: bool, request_timeout: float) -> Any:
        operations = [AclOperation.DESCRIBE, AclOperation.ALTER] if self.may_describe else None
        return self._future(SimpleNamespace(authorized_operations=operations))

    def list_topics(self, timeout: float) -> Any:
        return SimpleNamespace(brokers={1: None})

    def describe_configs(self, resources: list[Any], request_timeout: float) -> dict[Any, Any]:
        entry = SimpleNamespace(value=self.authorizer)
        return {resources[0]: self._future({"authorizer.class.name": entry})}

    def create_acls(self, bindings: list[AclBinding], request_timeout: float) -> dict[Any, Any]:
        self.created += bindings
        return {b: self._future(None) for b in bindings}


def test_apply_creates_only_what_is_missing_and_explains_a_cluster_without_authorizer() -> None:
    one, two = (Acl("User:a", "TOPIC", t, "LITERAL", "READ") for t in ("x", "y"))
    admin = FakeAdmin([one])
    assert apply_acls(admin, [one, two], dry_run=True) == [two]  # type: ignore[arg-type]
    assert admin.created == []
    assert apply_acls(admin, [one, two]) == [two]  # type: ignore[arg-type]
    assert admin.created == [binding(two)]
    plain = FakeAdmin([], error=KafkaError.SECURITY_DISABLED)
    with pytest.raises(AclApplyError, match="the cluster has no authorizer"):
        apply_acls(plain, [one])  # type: ignore[arg-type]
    refused = FakeAdmin([], error=KafkaError.CLUSTER_AUTHORIZATION_FAILED)
    with pytest.raises(AclApplyError, match="may not manage ACLs"):
        apply_acls(refused, [one])  # type: ignore[arg-type]


def test_an_empty_answer_is_checked_against_what_the_principal_may_do() -> None:
    """librdkafka answers a refused DescribeAcls with an empty list (seen on Kafka 4.1)."""
    one = Acl("User:a", "TOPIC", "x", "LITERAL", "READ")
    hidden = FakeAdmin([], may_describe=False)
    with pytest.raises(AclApplyError, match="listing ACLs: this principal may not manage"):
        apply_acls(hidden, [one], dry_run=True)  # type: ignore[arg-type]
    assert apply_acls(FakeAdmin([]), [one], dry_run=True) == [one]  # type: ignore[arg-type]
    # No authorizer: also an empty list, and a dry run said "would add" what apply could not.
    plain = FakeAdmin([], authorizer="")
    with pytest.raises(AclApplyError, match="listing ACLs: the cluster has no authorizer"):
        apply_acls(plain, [one], dry_run=True)  # type: ignore[arg-type]


def test_apply_returns_once_the_cluster_lists_what_it_created() -> None:
    """The controller takes ACLs before the brokers' metadata has them: the parts started
    next, or an ``apply --dry-run`` at once, must find them."""
    one = Acl("User:a", "TOPIC", "x", "LITERAL", "READ")
    lagging = FakeAdmin([], listed_after=3)
    assert apply_acls(lagging, [one]) == [one]  # type: ignore[arg-type]
    assert apply_acls(lagging, [one], dry_run=True) == []  # type: ignore[arg-type]
    lost = FakeAdmin([], listed_after=None)
    lost.create_acls([binding(one)], request_timeout=1)
    with pytest.raises(AclApplyError, match="created but not listed by the cluster"):
        wait_visible(lost, [one], timeout_s=0.3)  # type: ignore[arg-type]


def test_a_prefix_without_a_principal_type_is_named_as_the_prefix() -> None:
    """`acls plan --principal-prefix team- --part collector` blamed the principal of
    another part (team-preprocess), not the prefix given."""
    with pytest.raises(TopologyError) as refused:
        principals(["preprocess", "collector"], "team-")
    message = str(refused.value)
    assert "--principal-prefix 'team-'" in message
    assert "User:team-" in message
    with pytest.raises(TopologyError, match="principal 'ops' of part collector"):
        principals(["preprocess", "collector"], overrides={"collector": "ops"})


def test_entries_of_the_planned_principals_outside_the_plan_are_named() -> None:
    from streamlearn.topology.acl_admin import unplanned_acls

    planned = Acl("User:a", "TOPIC", "ns.x", "LITERAL", "READ")
    older = Acl("User:a", "GROUP", "reader", "LITERAL", "READ")
    others = Acl("User:b", "GROUP", "reader", "LITERAL", "READ")
    admin = FakeAdmin([planned, older, others])
    assert unplanned_acls(admin, [planned], {"User:a"}) == [older]  # type: ignore[arg-type]
    assert unplanned_acls(admin, [planned, older], {"User:a"}) == []  # type: ignore[arg-type]
