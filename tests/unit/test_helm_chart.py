"""The Helm chart, without a cluster: lint, render with the defaults and four values files,
validate every manifest against two Kubernetes versions' schemas, and check what every part
must have (non-root read-only containers with probes and resources, labels, secrets only by
reference when existing ones are named). The values schema is the settings' own."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streamlearn.deploy.placed_elsewhere import is_refusal
from streamlearn.deploy.values_reference import REFERENCE_END, REFERENCE_START, values_reference
from streamlearn.deploy.values_schema import CHART_MANAGED, SECRET_SETTINGS, render
from streamlearn.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamlearn"
HELM = ROOT / ".tools" / "bin" / "helm"
VALUES_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
# The oldest the chart supports (Chart.yaml kubeVersion is newer than this one's predecessor)
# and the newest kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
)


def _helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run ./scripts/bootstrap_deploy")
    result = subprocess.run([str(HELM), *args], capture_output=True, text=True, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render_chart(
    *values: str | Path, sets: tuple[str, ...] = (), json_sets: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", "ml", "--kube-version", "1.30.0"]
    for path in values:
        args += ["--values", str(path)]
    for item in sets:
        args += ["--set", item]
    for item in json_sets:
        args += ["--set-json", item]  # floats: --set would make them strings
    documents = yaml.safe_load_all(_helm(*args).stdout)
    return [d for d in documents if d]


def _pod_specs(documents: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for document in documents:
        if document["kind"] in {"Deployment", "Job"}:
            yield document, document["spec"]["template"]["spec"]
        elif document["kind"] == "Pod":
            yield document, document["spec"]


RENDERINGS = {"defaults": ()} | {path.stem: (path,) for path in VALUES_FILES}


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render_chart(*RENDERINGS[request.param])


def test_four_values_files_besides_the_defaults() -> None:
    assert [p.stem for p in VALUES_FILES] == [
        "archive-values",
        "external-sasl-ssl-values",
        "minimal-values",
        "production-values",
    ]


def test_values_schema_is_generated_from_the_settings() -> None:
    committed = (CHART / "values.schema.json").read_text()
    assert committed == render(), "run scripts/generate_values_schema.py"
    schema = json.loads(committed)
    properties = schema["properties"]["config"]["properties"]
    config = {name for name, spec in properties.items() if not is_refusal(spec)}
    secrets = schema["properties"]["secretConfig"]["properties"]["values"]["properties"]
    # Every setting is in `config`, in `secretConfig` (a secret) or set by the chart from
    # its own values; in one of them only. `config` refuses the others, saying where.
    assert config | set(secrets) | CHART_MANAGED == set(Settings.model_fields)
    assert set(secrets) == SECRET_SETTINGS
    assert set(properties) - config == CHART_MANAGED | SECRET_SETTINGS
    assert not config & CHART_MANAGED
    assert not config & SECRET_SETTINGS
    docs = (ROOT / "docs" / "deploy.md").read_text()
    section = docs.split(REFERENCE_START, 1)[1].split(REFERENCE_END, 1)[0]
    assert section.strip() == values_reference().strip(), "run scripts/generate_values_schema.py"


@pytest.mark.parametrize(
    "values", [None, *VALUES_FILES], ids=lambda v: getattr(v, "stem", "defaults")
)
def test_helm_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values is not None:
        args += ["--values", str(values)]
    _helm(*args)


def test_every_manifest_is_valid_for_two_kubernetes_versions(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, documents = rendered
    for document in documents:
        if document["kind"] in OPERATOR_KINDS:
            assert document["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(document, version, strict=True)


def test_every_container_is_non_root_read_only_with_resources(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, documents = rendered
    seen = 0
    for owner, pod in _pod_specs(documents):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            seen += 1
            where = f"{owner['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["runAsUser"] == 1001, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert container["resources"]["requests"], where
            assert container["resources"]["limits"]["memory"], where
            assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"]), where
            if owner["kind"] == "Deployment":
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert container[probe]["httpGet"]["path"] in {"/healthz", "/readyz"}, where
    assert seen >= 6


def test_every_object_has_the_recommended_labels(
    rendered: tuple[str, list[dict[str, Any]]],
) -> None:
    _, documents = rendered
    for document in documents:
        labels = document["metadata"]["labels"]
        missing = [label for label in RECOMMENDED_LABELS if label not in labels]
        assert not missing, f"{document['kind']} {document['metadata']['name']}: {missing}"


def test_parts_and_their_companions(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, documents = rendered
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    deployments = sorted(n for k, n in kinds if k == "Deployment")
    expected = [
        "rel-streamlearn-agents-label-join",
        "rel-streamlearn-agents-learner",
        "rel-streamlearn-agents-monitor",
        "rel-streamlearn-agents-preprocess",
        "rel-streamlearn-agents-sessionise",
        "rel-streamlearn-collector",
        "rel-streamlearn-registry",
        "rel-streamlearn-serve",
    ]
    if name == "external-sasl-ssl-values":
        expected.remove("rel-streamlearn-registry")  # an existing registry
    if name == "archive-values":
        expected.insert(5, "rel-streamlearn-archive")  # off by default
    assert deployments == expected
    jobs = {n for k, n in kinds if k == "Job"}
    assert jobs == {"rel-streamlearn-topics", "rel-streamlearn-schemas"}
    assert ("Pod", "rel-streamlearn-test-predict") in kinds
    assert (("HorizontalPodAutoscaler", "rel-streamlearn-serve") in kinds) == (
        name != "minimal-values"
    )
    assert (("NetworkPolicy", "rel-streamlearn") in kinds) == (name != "minimal-values")
    assert (("NetworkPolicy", "rel-streamlearn-archive") in kinds) == (name == "archive-values")
    monitoring = {k for k, _ in kinds} & OPERATOR_KINDS
    assert monitoring == (OPERATOR_KINDS if name == "production-values" else set())
    budgets = {n for k, n in kinds if k == "PodDisruptionBudget"}
    assert bool(budgets) == (name != "minimal-values")


def test_existing_secrets_are_referenced_never_inlined() -> None:
    documents = render_chart(CHART / "ci" / "external-sasl-ssl-values.yaml")
    assert not [d for d in documents if d["kind"] == "Secret"], "every secret is an existing one"
    for owner, pod in _pod_specs(documents):
        if owner["kind"] == "Pod":
            continue  # the helm test's pod only talks HTTP to the release
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            if container["name"] in {"serve", "agents-learner"}:  # the parts that sign or verify
                assert env["STREAMLEARN_MODEL_SIGNING_KEY"]["valueFrom"]["secretKeyRef"] == {
                    "name": "streamlearn-signing",
                    "key": "key",
                }
            if owner["metadata"]["name"].endswith("-schemas"):  # the registry only
                assert "STREAMLEARN_KAFKA_SASL_PASSWORD" not in env
            else:
                assert env["STREAMLEARN_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
                    "name": "kafka-credentials",
                    "key": "password",
                }
            assert all("value" not in e for e in env.values())
        mounts = [v for v in pod["volumes"] if v["name"] == "kafka-tls"]
        assert mounts == [{"name": "kafka-tls", "secret": {"secretName": "kafka-ca"}}]
    config = next(
        d
        for d in documents
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-config")
    )
    assert config["data"]["STREAMLEARN_KAFKA_SSL_CAFILE"] == "/etc/streamlearn/kafka-tls/ca.crt"
    assert (
        config["data"]["STREAMLEARN_SCHEMA_REGISTRY_URL"] == "https://schema-registry.example.com"
    )
    assert config["data"]["STREAMLEARN_TOPIC_PREFIX"] == "prod."
    assert config["data"]["STREAMLEARN_COLLECTOR_CORS_ORIGINS"] == '["https://shop.example.com"]'


def test_parts_given_their_own_kafka_users_log_in_as_them() -> None:
    """kafka.sasl.users: a Kafka user per part (collector, serve, registry, an agent set by
    its name, ops for the hooks), each with the ACLs `streamlearn acls apply` gives it; a
    part not listed logs in as kafka.sasl.username."""
    users = {
        "collector": {"username": "sl-collector", "existingSecret": "kafka-users"},
        "preprocess": {
            "username": "sl-preprocess",
            "existingSecret": "kafka-users",
            "passwordKey": "preprocess",
        },
        "ops": {"username": "sl-ops", "existingSecret": "kafka-ops"},
    }
    documents = render_chart(
        CHART / "ci" / "external-sasl-ssl-values.yaml",
        json_sets=(f"kafka.sasl.users={json.dumps(users)}",),
    )
    seen = {}
    for owner, pod in _pod_specs(documents):
        if owner["kind"] == "Pod":
            continue
        component = owner["metadata"]["labels"]["app.kubernetes.io/component"]
        for container in pod["containers"]:
            env = {e["name"]: e for e in container.get("env", [])}
            username = env.get("STREAMLEARN_KAFKA_SASL_USERNAME", {}).get("value")
            given = env.get("STREAMLEARN_KAFKA_SASL_PASSWORD")
            password = given["valueFrom"]["secretKeyRef"] if given else {"name": None, "key": None}
            seen[component] = (username, password["name"], password["key"])
    assert seen["collector"] == ("sl-collector", "kafka-users", "password")
    assert seen["agents-preprocess"] == ("sl-preprocess", "kafka-users", "preprocess")
    assert seen["topics-hook"] == ("sl-ops", "kafka-ops", "password")
    # Found by a new user: `schemas register` talks to the registry only, and got the Kafka
    # password all the same (least privilege).
    assert seen["schemas-hook"] == (None, None, None)
    # Not listed: the ConfigMap's username and the shared password.
    assert seen["serve"] == seen["agents-learner"] == (None, "kafka-credentials", "password")


def test_given_secrets_are_stored_in_the_charts_secret_only() -> None:
    documents = render_chart(
        sets=(
            "signing.key=s3cret-signing-key-0",
            "kafka.securityProtocol=SASL_PLAINTEXT",
            "kafka.sasl.mechanism=PLAIN",
            "kafka.sasl.username=u",
            "kafka.sasl.password=s3cret-sasl",
        )
    )
    secrets = [d for d in documents if d["kind"] == "Secret"]
    # The parts' Secret and the hooks' copy (test_helm_chart_operations), the same data.
    assert sorted(s["metadata"]["name"] for s in secrets) == [
        "rel-streamlearn-secrets",
        "rel-streamlearn-settings",
    ]
    for secret in secrets:
        stored = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert stored == {
            "model-signing-key": "s3cret-signing-key-0",
            "kafka-sasl-password": "s3cret-sasl",
        }
    others = yaml.safe_dump_all([d for d in documents if d["kind"] != "Secret"])
    assert "s3cret" not in others


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("config.session_gap_s=-5", "session_gap_s"),
        ("config.sesion_gap_s=5", "sesion_gap_s"),
        ("config.ip_policy=keep", "ip_policy"),
        ("kafka.securityProtocol=TLS", "securityProtocol"),
        ("agents.sets.x.agents={trainer}", "agents"),
        ("serve.port=70000", "port"),
    ],
)
def test_values_a_service_would_refuse_are_refused_by_helm(setting: str, complaint: str) -> None:
    result = _helm(
        "template", "rel", str(CHART), "--kube-version", "1.30.0", "--set", setting, check=False
    )
    assert result.returncode != 0
    assert complaint in result.stderr
    assert "values don't meet the specifications of the schema" in result.stderr


def test_config_values_reach_the_parts_as_the_settings_read_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render_chart(
        sets=(
            "config.collector_max_body_bytes=2097152",
            "config.collector_trust_forwarded_for=true",
            "config.models={ctr,ctr_tree}",
        ),
        json_sets=("config.session_gap_s=900.5",),
    )
    data = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.collector_max_body_bytes == 2097152
    assert settings.session_gap_s == 900.5
    assert settings.collector_trust_forwarded_for is True
    assert settings.models == ["ctr", "ctr_tree"]


def test_alerting_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run ./scripts/bootstrap_deploy")
    result = subprocess.run(
        [promtool, "check", "rules", str(CHART / "files" / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    dashboard = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert dashboard["panels"]


SECRET_VALUES = {
    "serve_api_tokens": ["tok-s3cret-012345"],
    "collector_write_keys": {"wk-s3cret-0123456": "shop"},
    "registry_writers": ["ops:pw-s3cret"],
    "schema_registry_basic_auth": "ops:pw-s3cret",
    "model_previous_signing_key": "old-s3cret",
    # The chart runs no dashboard: stored, given to no pod.
    "dashboard_api_tokens": ["dash-s3cret-0123456"],
    "dashboard_users": ["ops:dash-s3cret"],
}
"""Every secret setting a part may take (the chart's own signing, SASL and pseudonymisation
keys have values of their own)."""


def _containers(documents: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for owner, pod in _pod_specs(documents):
        for container in pod["containers"]:
            yield owner["metadata"]["name"].removeprefix("rel-streamlearn-"), container


def test_secret_settings_are_never_config_values() -> None:
    """A token in a ConfigMap is readable by anyone who may read the namespace's config."""
    result = _helm(
        "template", "rel", str(CHART), "--kube-version", "1.30.0",
        "--set-json", 'config.serve_api_tokens=["t"]', check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "serve_api_tokens" in result.stderr
    assert set(SECRET_VALUES) == SECRET_SETTINGS


def test_secret_settings_are_stored_in_the_secret_and_given_only_to_their_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    documents = render_chart(json_sets=(f"secretConfig.values={json.dumps(SECRET_VALUES)}",))
    others = yaml.safe_dump_all([d for d in documents if d["kind"] != "Secret"])
    assert "s3cret" not in others
    secrets = [d for d in documents if d["kind"] == "Secret"]  # the parts' and the hooks'
    assert len({json.dumps(s["data"], sort_keys=True) for s in secrets}) == 1
    stored = {k: base64.b64decode(v).decode() for k, v in secrets[0]["data"].items()}
    names = {s["metadata"]["name"] for s in secrets}
    given: dict[str, set[str]] = {}
    for part, container in _containers(documents):
        for item in container.get("env", []):
            reference = item.get("valueFrom", {}).get("secretKeyRef", {})
            if reference.get("name") in names and item["name"] in stored:
                given.setdefault(item["name"], set()).add(part.split("-")[0])
    assert given == {
        "STREAMLEARN_SERVE_API_TOKENS": {"serve", "test"},
        "STREAMLEARN_COLLECTOR_WRITE_KEYS": {"collector"},
        "STREAMLEARN_REGISTRY_WRITERS": {"registry"},
        # The test pod asks the registry too.
        "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH": {
            "collector",
            "serve",
            "agents",
            "schemas",
            "test",
        },
        "STREAMLEARN_MODEL_PREVIOUS_SIGNING_KEY": {"serve", "agents"},
    }
    for name in given:
        monkeypatch.setenv(name, stored[name])
    settings = Settings()
    assert [t.get_secret_value() for t in settings.serve_api_tokens] == ["tok-s3cret-012345"]
    assert {k.get_secret_value(): v for k, v in settings.collector_write_keys.items()} == {
        "wk-s3cret-0123456": "shop"
    }
    assert [w.get_secret_value() for w in settings.registry_writers] == ["ops:pw-s3cret"]


def test_secret_settings_from_an_existing_secret_are_referenced_by_name() -> None:
    documents = render_chart(sets=("secretConfig.existingSecret=streamlearn-http",))
    assert not [d for d in documents if d["kind"] == "Secret" and "STREAMLEARN" in str(d)]
    serve = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for part, container in _containers(documents)
        if part == "serve"
        for item in container["env"]
        if "valueFrom" in item
    }
    assert serve["STREAMLEARN_SERVE_API_TOKENS"] == {
        "name": "streamlearn-http",
        "key": "STREAMLEARN_SERVE_API_TOKENS",
        "optional": True,
    }
    assert "STREAMLEARN_COLLECTOR_WRITE_KEYS" not in serve


def test_the_helm_test_sends_a_token_when_the_api_has_tokens() -> None:
    documents = render_chart(
        json_sets=('secretConfig.values={"serve_api_tokens": ["t1-0123456789abcd"]}',)
    )
    (pod,) = [d for d in documents if d["kind"] == "Pod"]
    (container,) = pod["spec"]["containers"]
    assert container["env"] == [
        {
            "name": "STREAMLEARN_SERVE_API_TOKENS",
            "valueFrom": {
                "secretKeyRef": {
                    "name": "rel-streamlearn-settings",
                    "key": "STREAMLEARN_SERVE_API_TOKENS",
                }
            },
        }
    ]
    assert '"Bearer " + tokens[0]' in container["args"][0]
    (pod,) = [d for d in render_chart() if d["kind"] == "Pod"]
    assert "env" not in pod["spec"]["containers"][0]


def test_the_signing_and_pseudonymisation_keys_reach_only_the_parts_that_use_them() -> None:
    """The current signing key can sign snapshots the workers load: only the learner (which
    signs) and the workers (which verify) get it; the pseudonymisation key only preprocess.
    An agent set gets a key when one of its agents uses it."""
    documents = render_chart(
        sets=(
            "signing.key=k-s3cret-signing-key",
            "pseudonymisation.key=p-s3cret-pseudonym-key",
            "agents.sets.mixed.agents={sessionise,learner}",
            "agents.sets.sessionise.enabled=false",
            "agents.sets.learner.enabled=false",
        )
    )
    keys = {"STREAMLEARN_MODEL_SIGNING_KEY", "STREAMLEARN_PSEUDONYMISATION_KEY"}
    given: dict[str, set[str]] = {}
    for part, container in _containers(documents):
        for item in container.get("env", []):
            if item["name"] in keys:
                given.setdefault(item["name"], set()).add(part)
    assert given == {
        "STREAMLEARN_MODEL_SIGNING_KEY": {"serve", "agents-mixed"},
        "STREAMLEARN_PSEUDONYMISATION_KEY": {"agents-preprocess"},
    }


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("config.models={nosuch}",), "/config/models/0"),
        (("config.model_previous_signing_key_until=garbage",), "model_previous_signing_key_until"),
        (("config.ip_policy=pseudonymise",), "pseudonymisation.key"),
        (("agents.sets.Big_Set.agents={preprocess}",), "Big_Set"),
        # Found by a new user following docs/deploy.md: the new set was merged into the
        # default ones, and preprocess and sessionise ran in two groups each.
        (
            ("agents.sets.ingest.agents={preprocess,sessionise}",),
            "preprocess is in set ingest and in set preprocess: two consumer groups",
        ),
        (("agents.sets.watch.agents={monitor,preprocess}",), "monitor runs in a set of its own"),
        (("agents.sets.preprocess.agents={preprocess,preprocess}",), "items at 0 and 1 are equal"),
        (("signing.existingSecret=s", "signing.existingSecretKey="), "existingSecretKey"),
        (("signing.key=short-key",), "/signing/key"),  # the settings refuse under 16 too
        (("networkPolicy.kafkaPorts={}",), "kafkaPorts"),
        (("serve.autoscaling.minReplicas=5", "serve.autoscaling.maxReplicas=2"), "maxReplicas"),
    ],
)
def test_values_every_part_would_refuse_at_start_are_refused_by_helm(
    sets: tuple[str, ...], complaint: str
) -> None:
    """These rendered, and every part (or Kubernetes, for a set name that is no DNS label)
    refused them later: an unknown spec, a grace end that is no time, pseudonymising with no
    key, fewer replicas allowed than required."""
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0"]
    for item in sets:
        args += ["--set", item]
    result = _helm(*args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("url", "port"),
    [
        ("https://registry.example.com:8443", 8443),
        ("https://registry.example.com", 443),
        ("http://registry.example.com/base", 80),
        ("https://registry.example.com:08443", 8443),  # not octal (it read 08443 as 0)
    ],
)
def test_the_network_policy_lets_the_parts_reach_an_external_registry(url: str, port: int) -> None:
    """Found by a new user: egress allowed 443 and 8081 only, whatever the URL's port."""
    documents = render_chart(sets=("networkPolicy.enabled=true", f"schemaRegistry.url={url}"))
    (policy,) = [d for d in documents if d["kind"] == "NetworkPolicy"]
    ports = [rule["ports"] for rule in policy["spec"]["egress"] if "to" not in rule]
    assert [{"port": port}] in ports, ports
    assert all(rule.get("ports") for rule in policy["spec"]["egress"] if "to" not in rule)


@pytest.mark.parametrize(("bootstrap", "port"), [("kafka:09092", 9092), ("kafka:010", 10)])
def test_a_bootstrap_port_with_leading_zeros_is_read_as_decimal(bootstrap: str, port: int) -> None:
    """Found by a new user: `kafka:09092` opened egress port 0, `kafka:010` port 8."""
    documents = render_chart(
        sets=("networkPolicy.enabled=true", f"kafka.bootstrapServers={bootstrap}")
    )
    (policy,) = [d for d in documents if d["kind"] == "NetworkPolicy"]
    opened = [p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])]
    assert port in opened, opened


def test_a_client_certificate_with_its_key_inside_sets_no_key_file() -> None:
    """kafka.tls.certKey without keyKey made the key file the TLS directory itself."""
    documents = render_chart(
        sets=(
            "kafka.securityProtocol=SSL",
            "kafka.tls.existingSecret=kafka-tls",
            "kafka.tls.certKey=tls.pem",
        )
    )
    (config,) = [
        d for d in documents if d["kind"] == "ConfigMap" and "-config" in d["metadata"]["name"]
    ]
    assert config["data"]["STREAMLEARN_KAFKA_SSL_CERTFILE"] == "/etc/streamlearn/kafka-tls/tls.pem"
    assert "STREAMLEARN_KAFKA_SSL_KEYFILE" not in config["data"]


def test_https_reaches_the_probes_the_registry_url_the_test_and_the_scrapes() -> None:
    """With HTTPS (the servers refuse plain HTTP), the chart kept plain probes, an http://
    registry URL, an http:// helm test and plain scrapes, and had no way to mount the
    certificate: no server could become ready."""
    documents = render_chart(
        sets=(
            "httpTls.existingSecret=web-tls",
            "httpTls.caKey=ca.crt",
            "metrics.serviceMonitor.enabled=true",
        )
    )
    (config,) = [
        d for d in documents if d["kind"] == "ConfigMap" and "-config" in d["metadata"]["name"]
    ]
    data = config["data"]
    assert data["STREAMLEARN_HTTP_TLS_CERTFILE"] == "/etc/streamlearn/http-tls/tls.crt"
    assert data["STREAMLEARN_HTTP_TLS_KEYFILE"] == "/etc/streamlearn/http-tls/tls.key"
    assert data["STREAMLEARN_HTTP_TLS_CAFILE"] == "/etc/streamlearn/http-tls/ca.crt"
    assert data["STREAMLEARN_SCHEMA_REGISTRY_URL"].startswith("https://")
    servers = {"collector", "serve", "registry"}
    for owner, pod in _pod_specs(documents):
        name = owner["metadata"]["name"].removeprefix("rel-streamlearn-")
        (volume,) = [v for v in pod["volumes"] if v["name"] == "http-tls"]
        # Group-readable (the pod's fsGroup), not others': the servers refuse a key others read.
        assert volume["secret"] == {"secretName": "web-tls", "defaultMode": 0o440}, name
        for container in pod["containers"]:
            assert {
                "name": "http-tls",
                "mountPath": "/etc/streamlearn/http-tls",
                "readOnly": True,
            } in container["volumeMounts"]
            if name in servers:
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert container[probe]["httpGet"]["scheme"] == "HTTPS", (name, probe)
            elif "startupProbe" in container:  # the agents' metrics stay plain HTTP
                assert "scheme" not in container["startupProbe"]["httpGet"], name
    (test_pod,) = [d for d in documents if d["kind"] == "Pod"]
    script = test_pod["spec"]["containers"][0]["args"][0]
    assert 'scheme = "https"' in script
    assert '"https://rel-streamlearn-registry:8081/subjects"' in script
    assert 'cafile="/etc/streamlearn/http-tls/ca.crt"' in script
    assert "http://" not in script
    monitors = [d for d in documents if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2  # the collector's and the workers'
    for monitor in monitors:
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "web-tls", "key": "ca.crt"}
