"""The archive agent in the Helm chart (`archive.*`, rendered with helm, no cluster): off by
default; on, one Deployment whose arguments are a command line `streamlearn archive run`
itself accepts, the object store's credentials by reference and in that pod alone, a local
root only on a claim of yours (an emptyDir would lose the archive with the pod)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import typer

from streamlearn.cli import app
from streamlearn.settings import Settings
from tests.unit.test_helm_chart import (
    CHART,
    KUBERNETES_VERSIONS,
    _helm,
    _pod_specs,
    render_chart,
)

pytestmark = pytest.mark.unit

BOOTSTRAP = "kafka.bootstrapServers=kafka:9092"
S3 = (
    BOOTSTRAP,
    "archive.enabled=true",
    "archive.root=s3://lake/streamlearn",
    "archive.format=parquet",
    "archive.s3.endpointUrl=http://minio.storage:9000",
    "archive.s3.region=eu-west-1",
    "archive.s3.existingSecret=archive-s3",
)
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _archive(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [
        d
        for d in documents
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "rel-streamlearn-archive"
    ]
    return deployment


def _parsed(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The parameters the real CLI reads from the container's arguments."""
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_REGION"):  # options' defaults, not these
        monkeypatch.delenv(variable, raising=False)
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    archive = group.commands[args[0]]
    assert isinstance(archive, typer.core.TyperGroup)
    run = archive.commands[args[1]]
    context = run.make_context(f"streamlearn {args[0]} {args[1]}", list(args[2:]))
    return dict(context.params)


def _failure(*sets: str) -> str:
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0"]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args, check=False)
    assert result.returncode != 0, "rendered"
    return result.stderr


def test_the_archive_is_off_by_default() -> None:
    documents = render_chart(sets=(BOOTSTRAP,))
    components = {d["metadata"]["labels"].get("app.kubernetes.io/component") for d in documents}
    assert "archive" not in components
    assert "AWS_" not in json.dumps(documents)
    assert [d["metadata"]["name"] for d in documents if d["kind"] == "NetworkPolicy"] == [
        "rel-streamlearn"
    ]


def test_an_s3_archive_runs_archive_run_with_a_command_line_the_cli_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render_chart(
        sets=(*S3, "archive.topics={events.clean,telemetry.*}", "archive.metricsPort=9200")
    )
    deployment = _archive(documents)
    assert deployment["spec"]["replicas"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["streamlearn"]
    args = container["args"]
    assert args[:2] == ["archive", "run"]
    params = _parsed(args, monkeypatch)
    assert params["root"] == "s3://lake/streamlearn"
    assert params["file_format"].value == "parquet"
    assert params["topics"] == "events.clean,telemetry.*"
    assert params["s3_endpoint_url"] == "http://minio.storage:9000"
    assert params["s3_region"] == "eu-west-1"
    assert params["metrics_host"] == "0.0.0.0"
    assert params["metrics_port"] == 9200
    assert params["group"] == "streamlearn-archive"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9200}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for document in documents:
        for version in KUBERNETES_VERSIONS:
            if document["kind"] not in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}:
                kubernetes_validate.validate(document, version, strict=True)


def test_the_defaults_leave_the_options_to_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    documents = render_chart(
        sets=(BOOTSTRAP, "archive.enabled=true", "archive.root=s3://lake/streamlearn")
    )
    (container,) = _archive(documents)["spec"]["template"]["spec"]["containers"]
    params = _parsed(container["args"], monkeypatch)
    assert params["topics"] is None  # the CLI's default topics
    assert params["file_format"].value == "avro"
    assert params["s3_endpoint_url"] is None
    assert "--topics" not in container["args"]
    # No Secret named: the AWS chain (a node's or a pod's role), nothing in the pod.
    assert not AWS_CREDENTIALS & {e["name"] for e in container.get("env", [])}


def test_the_object_stores_credentials_reach_the_archive_alone() -> None:
    documents = render_chart(
        sets=(*S3, "archive.s3.accessKeyIdKey=id", "archive.s3.secretAccessKeyKey=secret")
    )
    given: dict[str, dict[str, Any]] = {}
    for owner, pod in _pod_specs(documents):
        for container in pod["containers"]:
            for item in container.get("env", []):
                if item["name"].startswith("AWS_"):
                    given.setdefault(owner["metadata"]["name"], {})[item["name"]] = item
    assert list(given) == ["rel-streamlearn-archive"]
    assert given["rel-streamlearn-archive"] == {
        "AWS_ACCESS_KEY_ID": {
            "name": "AWS_ACCESS_KEY_ID",
            "valueFrom": {"secretKeyRef": {"name": "archive-s3", "key": "id"}},
        },
        "AWS_SECRET_ACCESS_KEY": {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": "archive-s3", "key": "secret"}},
        },
    }
    # Nothing of the store in the chart's own ConfigMaps or Secrets.
    stored = [d for d in documents if d["kind"] in {"ConfigMap", "Secret"}]
    assert "archive-s3" not in json.dumps(stored)


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (
            ("archive.root=/archive",),
            "archive.root /archive is a local path but archive.persistence.existingClaim is "
            "not given",
        ),
        ((), "archive.root is required when archive.enabled"),
        (("archive.root=archive",), "archive.root archive: s3://bucket/prefix"),
        (("archive.root=gs://lake/x",), "archive.root gs://lake/x: s3://bucket/prefix"),
        (("archive.root=/data", "archive.persistence.existingClaim=c"), "archive.root /data"),
        (("archive.root=s3://lake/x", "archive.persistence.existingClaim=c"), "existingClaim"),
        (("archive.root=s3://lake/x", "archive.format=orc"), "format"),
        (
            (
                "archive.root=s3://lake/x",
                "archive.s3.existingSecret=s",
                "archive.s3.accessKeyIdKey=",
            ),
            "accessKeyIdKey",
        ),
        (("archive.root=s3://lake/x", "archive.s3.endpointUrl=minio:9000"), "endpointUrl"),
        (("archive.root=s3://lake/x", "config.archive_root=s3://other/y"), "config.archive_root"),
    ],
)
def test_an_archive_that_would_be_lost_or_refused_is_refused_by_helm(
    sets: tuple[str, ...], complaint: str
) -> None:
    """A local root on the pod's emptyDir would lose every file with the pod."""
    stderr = _failure(BOOTSTRAP, "archive.enabled=true", *sets)
    assert complaint in stderr, stderr


def test_a_local_root_is_the_claim_mounted_there() -> None:
    documents = render_chart(
        sets=(
            BOOTSTRAP,
            "archive.enabled=true",
            "archive.root=/archive",
            "archive.persistence.existingClaim=streamlearn-archive",
        )
    )
    deployment = _archive(documents)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--root" in container["args"]
    assert container["args"][container["args"].index("--root") + 1] == "/archive"
    assert {"name": "archive", "mountPath": "/archive"} in container["volumeMounts"]
    assert {
        "name": "archive",
        "persistentVolumeClaim": {"claimName": "streamlearn-archive"},
    } in pod["volumes"]
    # A ReadWriteOnce claim cannot be on two nodes: the old pod goes before the new one.
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(deployment, version, strict=True)


def test_the_archive_logs_in_as_its_own_kafka_user() -> None:
    users = {"archive": {"username": "sl-archive", "existingSecret": "kafka-users"}}
    documents = render_chart(
        CHART / "ci" / "external-sasl-ssl-values.yaml",
        sets=("archive.enabled=true", "archive.root=s3://lake/x"),
        json_sets=(f"kafka.sasl.users={json.dumps(users)}",),
    )
    (container,) = _archive(documents)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["STREAMLEARN_KAFKA_SASL_USERNAME"]["value"] == "sl-archive"
    assert env["STREAMLEARN_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "kafka-users",
        "key": "password",
    }
    assert "STREAMLEARN_MODEL_SIGNING_KEY" not in env  # signs nothing, verifies nothing
    assert "STREAMLEARN_PSEUDONYMISATION_KEY" not in env
    # Without the archive, a user for it is one for a part the release does not run.
    stderr = _failure(BOOTSTRAP, "kafka.securityProtocol=SASL_SSL", "kafka.sasl.mechanism=PLAIN",
                      "kafka.sasl.username=u", "kafka.sasl.existingSecret=k",
                      "kafka.sasl.users.archive.username=a",
                      "kafka.sasl.users.archive.existingSecret=s")  # fmt: skip
    assert "kafka.sasl.users.archive: this release runs no such part" in stderr


def test_retention_and_the_registry_password_reach_the_archive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render_chart(
        sets=(
            BOOTSTRAP,
            "archive.enabled=true",
            "archive.root=s3://lake/x",
            "secretConfig.values.schema_registry_basic_auth=u:pw",
        ),
        json_sets=("config.archive_retention_hours=720",),
    )
    (container,) = _archive(documents)["spec"]["template"]["spec"]["containers"]
    (source,) = container["envFrom"]
    configs = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    for name, value in configs[source["configMapRef"]["name"]].items():
        monkeypatch.setenv(name, value)
    assert Settings().archive_retention_hours == 720
    names = {e["name"] for e in container["env"]}
    # The archive looks up each writer schema in the registry.
    assert "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH" in names


def test_the_archive_may_reach_the_object_store_and_be_scraped() -> None:
    documents = render_chart(
        sets=(*S3, "metrics.serviceMonitor.enabled=true", "archive.replicas=2"),
        json_sets=(
            'networkPolicy.metricsFrom=[{"namespaceSelector": {"matchLabels": '
            '{"kubernetes.io/metadata.name": "monitoring"}}}]',
        ),
    )
    deployment = _archive(documents)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    policies = {d["metadata"]["name"]: d for d in documents if d["kind"] == "NetworkPolicy"}
    policy = policies["rel-streamlearn-archive"]["spec"]
    # Its own policy: egress to the store for the archive's pods only.
    selector = policy["podSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "archive"
    assert all(labels[k] == v for k, v in selector.items())
    opened = [p["port"] for rule in policy["egress"] for p in rule["ports"]]
    assert sorted(opened) == [443, 9000]
    assert all("to" not in rule for rule in policy["egress"])  # anywhere by default
    ingress_ports = [p["port"] for rule in policy["ingress"] for p in rule["ports"]]
    assert set(ingress_ports) == {9100}
    shared = json.dumps(policies["rel-streamlearn"])
    assert '"port": 443' not in shared
    # The chart's PodMonitor scrapes it, on its metrics port.
    (monitor,) = [d for d in documents if d["kind"] == "PodMonitor"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    assert all(labels[k] == v for k, v in wanted.items())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} <= ports
    (budget,) = [
        d
        for d in documents
        if d["kind"] == "PodDisruptionBudget" and d["metadata"]["name"] == "rel-streamlearn-archive"
    ]
    assert budget["spec"]["minAvailable"] == 1


def test_the_object_stores_peers_are_configurable() -> None:
    documents = render_chart(
        sets=(BOOTSTRAP, "archive.enabled=true", "archive.root=s3://lake/x"),
        json_sets=(
            "archive.networkPolicy.egressPorts=[8443]",
            'archive.networkPolicy.egressTo=[{"ipBlock": {"cidr": "10.20.0.0/16"}}]',
        ),
    )
    (policy,) = [
        d
        for d in documents
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "rel-streamlearn-archive"
    ]
    (rule,) = policy["spec"]["egress"]
    assert rule == {"ports": [{"port": 8443}], "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}
