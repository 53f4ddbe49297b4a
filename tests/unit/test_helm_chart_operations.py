"""The Helm chart where a new user deploying it found it wrong: which brokers and scrapers
the NetworkPolicy lets through, what Prometheus scrapes, what a refused upgrade leaves
live, which parts get which key, what the values schema refuses (without quoting secrets),
settings that could not be set, scaling to zero, per-part Kafka users, the secrets' hash in
pod annotations, and the workers' startup probe. Rendered with helm, no cluster."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from streamlearn.settings import Settings
from tests.unit.test_helm_chart import CHART, _containers, _helm, _pod_specs, render_chart

pytestmark = pytest.mark.unit

BOOTSTRAP = "kafka.bootstrapServers=kafka:9092"


def _kind(documents: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d["kind"] == kind]


def _policy(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (policy,) = _kind(documents, "NetworkPolicy")
    return policy["spec"]  # type: ignore[no-any-return]


def test_the_network_policy_lets_the_parts_reach_every_bootstrap_port() -> None:
    """The documented SASL_SSL values put the brokers on 9096; egress allowed only the
    default kafkaPorts, so every pod was cut off from Kafka."""
    documents = render_chart(CHART / "ci" / "external-sasl-ssl-values.yaml")
    egress = _policy(documents)["egress"]
    broker_ports = {p["port"] for p in egress[0]["ports"]}
    assert {9092, 9093, 9094, 9096} <= broker_ports
    documents = render_chart(json_sets=('kafka.bootstrapServers="a:19092, b:29092,[::1]:39092"',))
    assert {19092, 29092, 39092} <= {p["port"] for p in _policy(documents)["egress"][0]["ports"]}


def test_prometheus_and_helm_test_get_through_a_network_policy_that_keeps_the_api_closed() -> None:
    """Prometheus in another namespace could not reach the agents' metrics port; listing it
    in ingressFrom opened the public API to it and closed it to everyone else, and `helm
    test`'s pod could not reach the collector or the workers."""
    prometheus = {"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}
    gateway = {"namespaceSelector": {"matchLabels": {"name": "gateway"}}}
    release = {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": "rel"}}}
    documents = render_chart(
        json_sets=(
            f"networkPolicy.ingressFrom=[{json.dumps(gateway)}]",
            f"networkPolicy.metricsFrom=[{json.dumps(prometheus)}]",
        ),
        sets=(BOOTSTRAP,),
    )
    api, internal, metrics = _policy(documents)["ingress"]
    assert [p["port"] for p in api["ports"]] == [8001, 8000]
    assert api["from"] == [release, gateway, prometheus]
    assert internal["from"] == [release, gateway]
    assert metrics == {"ports": [{"port": 9100}], "from": [prometheus]}
    (open_api, _internal) = _policy(render_chart(sets=(BOOTSTRAP,)))["ingress"]
    assert "from" not in open_api, "no ingressFrom: the API is public"


def test_monitors_scrape_the_collector_and_workers_each_checked_by_its_service_name() -> None:
    """The ServiceMonitor also scraped the registry, which serves no /metrics (a target
    always down: StreamlearnPartDown fired for good), and over HTTPS verified no server
    name while Prometheus connects to pod IPs."""
    documents = render_chart(
        sets=(
            BOOTSTRAP,
            "metrics.serviceMonitor.enabled=true",
            "httpTls.existingSecret=web-tls",
            "httpTls.caKey=ca.crt",
        )
    )
    monitors = {
        m["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]: m
        for m in _kind(documents, "ServiceMonitor")
    }
    assert sorted(monitors) == ["collector", "serve"]
    for part, monitor in monitors.items():
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["tlsConfig"]["serverName"] == f"rel-streamlearn-{part}"
        assert endpoint["tlsConfig"]["ca"]["secret"] == {"name": "web-tls", "key": "ca.crt"}


def test_a_refused_upgrade_leaves_what_the_parts_read_untouched() -> None:
    """The parts and the hooks read one ConfigMap and Secret, made as pre-upgrade hooks:
    an upgrade its hooks refused had already put its settings live (for any pod started
    after), and `helm rollback` never restored them."""
    documents = render_chart(
        sets=(BOOTSTRAP, "signing.key=k-s3cret-signing-key-0123"),
        json_sets=('secretConfig.values.serve_api_tokens=["t0ken-0123456789ab"]',),
    )
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    parts_config = by_name["ConfigMap", "rel-streamlearn-settings"]
    hooks_config = by_name["ConfigMap", "rel-streamlearn-config"]
    parts_secret = by_name["Secret", "rel-streamlearn-settings"]
    hooks_secret = by_name["Secret", "rel-streamlearn-secrets"]
    for regular in (parts_config, parts_secret):
        assert "helm.sh/hook" not in regular["metadata"].get("annotations", {})
    for hook in (hooks_config, hooks_secret):
        assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert parts_config["data"] == hooks_config["data"], "the hooks see the new settings"
    assert parts_secret["data"] == hooks_secret["data"]
    read: dict[str, set[str]] = {}
    for owner, pod in _pod_specs(documents):
        kind = owner["kind"]
        for container in pod["containers"]:
            read.setdefault(kind, set()).update(
                s["configMapRef"]["name"] for s in container.get("envFrom", [])
            )
            read[kind].update(
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in container.get("env", [])
                if "secretKeyRef" in e.get("valueFrom", {})
            )
    assert read["Deployment"] == {"rel-streamlearn-settings"}
    assert "rel-streamlearn-config" in read["Job"]
    assert read["Job"] <= {"rel-streamlearn-config", "rel-streamlearn-secrets"}
    assert read["Pod"] <= {"rel-streamlearn-settings"}  # helm test: the API token


def test_a_generated_signing_key_is_the_same_in_both_secrets() -> None:
    documents = render_chart(sets=(BOOTSTRAP,))
    keys = {
        d["metadata"]["name"]: d["data"]["model-signing-key"] for d in _kind(documents, "Secret")
    }
    assert set(keys) == {"rel-streamlearn-settings", "rel-streamlearn-secrets"}
    assert len(set(keys.values())) == 1


def test_the_previous_signing_key_reaches_only_the_workers_and_the_learner() -> None:
    """Every agent set got it: while it verifies, any agent pod could sign a snapshot the
    workers would serve."""
    documents = render_chart(
        sets=(BOOTSTRAP,),
        json_sets=('secretConfig.values.model_previous_signing_key="old-key-0123456789abc"',),
    )
    given = {
        part
        for part, container in _containers(documents)
        for item in container.get("env", [])
        if item["name"] == "STREAMLEARN_MODEL_PREVIOUS_SIGNING_KEY"
    }
    assert given == {"serve", "agents-learner"}


@pytest.mark.parametrize(
    ("sets", "json_sets", "complaint"),
    [
        (("schemaRegistry.url=schema-registry:8081",), (), "/schemaRegistry/url"),
        (("kafka.bootstrapServers=kafka",), (), "/kafka/bootstrapServers"),
        (("kafka.bootstrapServers=kafka:99999",), (), "/kafka/bootstrapServers"),
        (("config.collector_cors_origins={shop.example.com}",), (), "collector_cors_origins/0"),
        (("signing.key= abcdefghijklmnopqrstuvwxyz ",), (), "/signing/key"),
        ((), ('secretConfig.values.serve_api_tokens=["let me in"]',), "serve_api_tokens/0"),
        (("agents.sets.Ingest.agents={preprocess}",), (), "'Ingest' not allowed"),
    ],
)
def test_the_schema_refuses_what_the_services_refuse_without_quoting_secrets(
    sets: tuple[str, ...], json_sets: tuple[str, ...], complaint: str
) -> None:
    """Each rendered, and the services refused it at start; a set's name that is no DNS
    label was reported at another value's path."""
    args = ["template", "rel", str(CHART), "--kube-version", "1.30.0", "--set", BOOTSTRAP]
    for item in sets:
        args += ["--set", item]
    for item in json_sets:
        args += ["--set-json", item]
    result = _helm(*args, check=False)
    assert result.returncode != 0
    assert complaint in result.stderr, result.stderr
    for secret in ("abcdefghijklmnopqrstuvwxyz", "let me in"):
        assert secret not in result.stderr


def test_settings_that_name_files_and_an_encrypted_client_key_can_be_set() -> None:
    """config.geoip_database and config.topology_file were refused, and nothing could give
    an encrypted client key's password."""
    mount = {"name": "geo", "mountPath": "/etc/streamlearn/geo", "readOnly": True}
    documents = render_chart(
        sets=(
            "kafka.bootstrapServers=kafka:9093",
            "kafka.securityProtocol=SSL",
            "kafka.tls.existingSecret=kafka-tls",
            "kafka.tls.certKey=tls.crt",
            "kafka.tls.keyKey=tls.key",
            "kafka.tls.keyPasswordKey=key-password",
            "config.geoip_database=/etc/streamlearn/geo/city.mmdb",
            "config.topology_file=/etc/streamlearn/geo/topics.yaml",
        ),
        json_sets=(
            'extraVolumes=[{"name": "geo", "configMap": {"name": "geoip"}}]',
            f"extraVolumeMounts=[{json.dumps(mount)}]",
        ),
    )
    (config,) = [
        d for d in _kind(documents, "ConfigMap") if d["metadata"]["name"].endswith("-settings")
    ]
    assert config["data"]["STREAMLEARN_GEOIP_DATABASE"] == "/etc/streamlearn/geo/city.mmdb"
    assert config["data"]["STREAMLEARN_TOPOLOGY_FILE"] == "/etc/streamlearn/geo/topics.yaml"
    for owner, pod in _pod_specs(documents):
        if owner["kind"] == "Pod":
            continue
        assert {"name": "geo", "configMap": {"name": "geoip"}} in pod["volumes"]
        for container in pod["containers"]:
            assert mount in container["volumeMounts"]
            password = [
                e for e in container["env"] if e["name"] == "STREAMLEARN_KAFKA_SSL_KEY_PASSWORD"
            ]
            assert password == [
                {
                    "name": "STREAMLEARN_KAFKA_SSL_KEY_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": "kafka-tls", "key": "key-password"}},
                }
            ]


def test_an_agent_set_scales_to_zero() -> None:
    """`replicas: 0` rendered 1 (`default` takes 0 for unset), unlike the collector's."""
    documents = render_chart(sets=(BOOTSTRAP, "agents.sets.learner.replicas=0"))
    replicas = {
        d["metadata"]["name"]: d["spec"].get("replicas") for d in _kind(documents, "Deployment")
    }
    assert replicas["rel-streamlearn-agents-learner"] == 0
    assert replicas["rel-streamlearn-agents-monitor"] == 1


SASL = (
    "kafka.bootstrapServers=kafka:9096",
    "kafka.securityProtocol=SASL_SSL",
    "kafka.sasl.mechanism=SCRAM-SHA-512",
)


def _users(parts: list[str]) -> str:
    users = {
        p: {"username": f"sl-{p}", "existingSecret": "kafka-users", "passwordKey": p} for p in parts
    }
    return f"kafka.sasl.users={json.dumps(users)}"


def test_parts_all_on_their_own_kafka_users_need_no_shared_one() -> None:
    parts = ["collector", "serve", "registry", "ops", "preprocess", "sessionise", "label-join",
             "learner", "monitor"]  # fmt: skip
    documents = render_chart(sets=SASL, json_sets=(_users(parts),))
    for _part, container in _containers(documents):
        names = {e["name"]: e for e in container.get("env", [])}
        if "STREAMLEARN_KAFKA_SASL_PASSWORD" in names:
            ref = names["STREAMLEARN_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "kafka-users"
    for config in _kind(documents, "ConfigMap"):
        assert "STREAMLEARN_KAFKA_SASL_USERNAME" not in config.get("data", {})
    # One part on the shared user: then it is required, and named.
    result = _helm(
        "template", "rel", str(CHART), "--kube-version", "1.30.0",
        *[a for s in SASL for a in ("--set", s)], "--set-json", _users(parts[1:]), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "kafka.sasl.username is required" in result.stderr


def test_a_kafka_user_for_a_part_the_release_has_not_is_refused() -> None:
    """A misspelt key was taken, and the part logged in as the shared user without a word."""
    result = _helm(
        "template", "rel", str(CHART), "--kube-version", "1.30.0",
        *[a for s in SASL for a in ("--set", s)],
        "--set", "kafka.sasl.username=shared", "--set", "kafka.sasl.password=p",
        "--set-json", _users(["colector"]), check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "kafka.sasl.users.colector: this release runs no such part" in result.stderr


def test_the_secrets_hash_in_pod_annotations_is_salted() -> None:
    """An unsalted SHA-256 of the secret values' JSON: anyone who may read pods could test
    guesses of a token against it offline."""
    # What the annotation held: the SHA-256 of helm's toJson of secretConfig (keys sorted).
    secret_config = {"existingSecret": "", "values": {"serve_api_tokens": ["letmein-0123456789"]}}
    plain_json = json.dumps(secret_config, separators=(",", ":"), sort_keys=True)
    plain = hashlib.sha256(plain_json.encode()).hexdigest()
    for sets in ((BOOTSTRAP,), (BOOTSTRAP, "signing.key=k-s3cret-signing-key-0123")):
        documents = render_chart(
            sets=sets, json_sets=('secretConfig.values.serve_api_tokens=["letmein-0123456789"]',)
        )
        annotations = {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/secret-config"]
            for d in _kind(documents, "Deployment")
        }
        (annotation,) = annotations
        assert annotation != plain
        assert "letmein-0123456789" not in annotation


@pytest.mark.parametrize(
    "secret_value",
    ["signing.key=k-s3cret-signing-key-{}", "kafka.sasl.password=pw-{}",
     "pseudonymisation.key=pseudonymisation-key-{}"],
)  # fmt: skip
def test_changing_a_secret_the_chart_keeps_rolls_the_pods_that_use_it(secret_value: str) -> None:
    """Found by a new user: the pods' secret checksum covered secretConfig only, so a new
    signing key, SASL password or pseudonymisation key (kept in the chart's own Secret)
    left the running pods on the old value, and pods started later (a scale-up) on the
    new one."""
    sets = (BOOTSTRAP, "signing.key=k-s3cret-signing-key-0123", *SASL,
            "kafka.sasl.username=u", "kafka.sasl.password=pw-0",
            "pseudonymisation.key=pseudonymisation-key-0")  # fmt: skip

    def checksums(value: str) -> dict[str, str]:
        documents = render_chart(sets=(*sets, secret_value.format(value)))
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/secret-config"
            ]
            for d in _kind(documents, "Deployment")
        }

    before, after = checksums("a"), checksums("b")
    assert before.keys() == after.keys()
    assert all(before[name] != after[name] for name in before), (before, after)
    assert not any("pw-" in c or "key-" in c for c in after.values())


def test_the_workers_startup_probe_outlasts_their_startup_wait() -> None:
    """serve_startup_wait_s 600 was taken, but the probe gave up after 180 s: the workers
    were restarted before they opened their port, again and again."""
    default_wait = Settings.model_fields["serve_startup_wait_s"].default
    for wait, sets in ((default_wait, ()), (600.0, ("config.serve_startup_wait_s=600",))):
        documents = render_chart(sets=(BOOTSTRAP, *sets), json_sets=())
        (serve,) = [
            d for d in _kind(documents, "Deployment") if d["metadata"]["name"].endswith("-serve")
        ]
        probe = serve["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
        assert probe["periodSeconds"] * probe["failureThreshold"] >= wait + 180
