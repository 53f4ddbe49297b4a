"""The Helm chart where a second new user found it wrong (rendered with helm, no cluster):
names the API server would refuse, a `helm test` that could not pass, Kafka users for
parts the release does not run, monitors whose alert could not fire or whose scrape could
not verify its server, and a test file packaged with the chart."""

from __future__ import annotations

import tarfile
from typing import Any

import pytest

from tests.unit.test_helm_chart import CHART, _helm, render_chart
from tests.unit.test_helm_chart_operations import SASL, _users

pytestmark = pytest.mark.unit

BOOTSTRAP = "kafka.bootstrapServers=kafka:9092"


def _template(*args: str, release: str = "rel") -> Any:
    return _helm("template", release, str(CHART), "--kube-version", "1.30.0", *args, check=False)


def test_a_release_name_too_long_for_its_service_names_is_refused() -> None:
    """`recommendations-production-europe-west1-blue` rendered and validated, and its
    Services (`...-streamlearn-collector`, 66 characters) were refused at install."""
    long_name = "recommendations-production-europe-west1-blue"
    result = _template("--set", BOOTSTRAP, release=long_name)
    assert result.returncode != 0
    assert "Service names are at most 63 characters" in result.stderr
    assert "fullnameOverride" in result.stderr
    # fullnameOverride is the way out, and is checked the same way.
    fine = _template("--set", BOOTSTRAP, "--set", "fullnameOverride=recs", release=long_name)
    assert fine.returncode == 0, fine.stderr
    assert _template("--set", BOOTSTRAP, "--set", "fullnameOverride=" + "r" * 60).returncode != 0


@pytest.mark.parametrize(
    ("release", "sets"),
    [("my.rel", ()), ("1ml", ()), ("rel", ("fullnameOverride=My_Name",)),
     ("rel", ("nameOverride=stream.learn",))],
)  # fmt: skip
def test_a_release_whose_service_names_kubernetes_refuses_is_refused(
    release: str, sets: tuple[str, ...]
) -> None:
    """Found by a new user: `helm template my.rel` (and `1ml`, `fullnameOverride=My_Name`)
    rendered Services such as `my.rel-streamlearn-collector`, which the API server refuses
    (a Service name is a DNS-1035 label: lower case, a letter first, no dots)."""
    result = _template("--set", BOOTSTRAP, *(a for s in sets for a in ("--set", s)),
                       release=release)  # fmt: skip
    assert result.returncode != 0, result.stdout[:300]
    assert "not a Service name Kubernetes takes" in result.stderr, result.stderr
    assert _template("--set", BOOTSTRAP, release="ml-1").returncode == 0


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (("tests.model=nosuch",), "/tests/model"),
        (("config.models={ctr_tree}",), "tests.model ctr is not among config.models (ctr_tree)"),
    ],
)
def test_helm_tests_model_must_be_one_the_workers_serve(
    sets: tuple[str, ...], complaint: str
) -> None:
    """`tests.model` was never checked: `helm test` then failed after the install (404)."""
    result = _template("--set", BOOTSTRAP, *[a for s in sets for a in ("--set", s)])
    assert result.returncode != 0
    assert complaint in result.stderr
    assert _template("--set", BOOTSTRAP, "--set", "config.models={ctr_tree}",
                     "--set", "tests.model=ctr_tree").returncode == 0  # fmt: skip


def test_a_short_token_is_refused_saying_it_is_short() -> None:
    """Found by a new user: a token of 8 characters was refused with `'not' failed` and
    nothing else (the check was one pattern, short or with white space, stated as what a
    token must not match so that Helm does not quote the secret). The length is now its
    own check, which Helm states as such, still without quoting the value. (Write keys
    are the keys of a map, whose refusal Helm quotes: the collector checks them.)"""
    setting = 'secretConfig.values.serve_api_tokens=["tok-0123"]'
    result = _template("--set", BOOTSTRAP, "--set-json", setting)
    assert result.returncode != 0
    assert "minLength: got 8, want 16" in result.stderr, result.stderr
    assert "0123" not in result.stderr
    spaced = setting.replace("0123", "0123 with a space")
    result = _template("--set", BOOTSTRAP, "--set-json", spaced)
    assert result.returncode != 0
    assert "with a space" not in result.stderr


def test_a_short_pseudonymisation_key_is_refused_as_the_setting_refuses_it() -> None:
    """Found by a new user: `pseudonymisation.key=x` rendered (and the worker took it) while
    `signing.key` has at least 16 characters; a key that short makes the IP pseudonyms
    reversible by trying keys."""
    result = _template("--set", BOOTSTRAP, "--set", "pseudonymisation.key=short-key")
    assert result.returncode != 0
    assert "minLength: got 9, want 16" in result.stderr, result.stderr
    assert "short-key" not in result.stderr
    assert (
        _template("--set", BOOTSTRAP, "--set", "pseudonymisation.key=exactly-16-chars").returncode
        == 0
    )


def test_the_helm_test_logs_in_to_a_registry_that_asks_for_a_password() -> None:
    documents = render_chart(
        sets=(BOOTSTRAP, "secretConfig.values.schema_registry_basic_auth=u:p-s3cret")
    )
    (test,) = [d for d in documents if d["metadata"]["name"].endswith("-test-predict")]
    (container,) = test["spec"]["containers"]
    names = {entry["name"] for entry in container.get("env", [])}
    assert "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH" in names
    assert "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH" in container["args"][0]


def test_the_helm_test_trusts_the_ca_of_certificate_files_given_under_config() -> None:
    """Found by a new user: with the certificate files under config.http_tls_* (from a
    Secret in extraVolumes), the test pod checked the servers' certificates against the
    system's CAs only, and had no such volume: `helm test` failed against a private CA."""
    documents = render_chart(
        sets=(BOOTSTRAP, "config.http_tls_certfile=/etc/certs/tls.crt",
              "config.http_tls_keyfile=/etc/certs/tls.key",
              "config.http_tls_cafile=/etc/certs/ca.crt"),
        json_sets=('extraVolumes=[{"name": "certs", "secret": {"secretName": "my-certs"}}]',
                   'extraVolumeMounts=[{"name": "certs", "mountPath": "/etc/certs"}]'),
    )  # fmt: skip
    (test,) = [d for d in documents if d["metadata"]["name"].endswith("-test-predict")]
    (container,) = test["spec"]["containers"]
    assert 'create_default_context(cafile="/etc/certs/ca.crt")' in container["args"][0]
    assert 'scheme = "https"' in container["args"][0]
    assert {"name": "certs", "mountPath": "/etc/certs"} in container["volumeMounts"]
    assert {"name": "certs", "secret": {"secretName": "my-certs"}} in test["spec"]["volumes"]


@pytest.mark.parametrize(
    ("sets", "part"),
    [
        (("agents.sets.preprocess.enabled=false", "agents.sets.ingest.agents={preprocess}"),
         "preprocess"),
        (("schemaRegistry.url=https://registry.example.com",), "registry"),
        (("topics.apply=false", "schemas.register=false"), "ops"),
    ],
)  # fmt: skip
def test_a_kafka_user_for_a_part_this_release_does_not_run_is_refused(
    sets: tuple[str, ...], part: str
) -> None:
    """docs/deploy.md: "a key that names no part of the release is refused"; a user for a
    disabled set, for the registry of a release using an external one, or for the hooks
    of a release that runs none was taken and never used."""
    result = _template(
        *[a for s in (*SASL, *sets) for a in ("--set", s)],
        "--set", "kafka.sasl.username=shared", "--set", "kafka.sasl.password=p",
        "--set-json", _users([part]),
    )  # fmt: skip
    assert result.returncode != 0
    assert f"kafka.sasl.users.{part}: this release runs no such part" in result.stderr


def test_every_monitors_targets_carry_their_part_for_the_down_alert() -> None:
    """StreamlearnPartDown matched `job=~".*streamlearn.*"`: with fullnameOverride the jobs
    are `recs-collector`, ..., and the alert could never fire. Every target now carries
    `streamlearn_part`, which the rule matches too (promtool checks it)."""
    documents = render_chart(
        sets=(BOOTSTRAP, "fullnameOverride=recs", "metrics.serviceMonitor.enabled=true")
    )
    monitors = [d for d in documents if d["kind"] in ("ServiceMonitor", "PodMonitor")]
    assert len(monitors) == 3
    for monitor in monitors:
        spec = monitor["spec"]
        (endpoint,) = spec.get("endpoints") or spec["podMetricsEndpoints"]
        labels = {r["targetLabel"] for r in endpoint["relabelings"]}
        assert "streamlearn_part" in labels, monitor["metadata"]["name"]
    rules = (CHART / "files" / "prometheus-rules.yaml").read_text()
    assert 'streamlearn_part!=""' in rules


@pytest.mark.parametrize(
    "tls", [("httpTls.existingSecret=web-tls",), ("config.http_tls_certfile=/tls/c.pem",
                                                   "config.http_tls_keyfile=/tls/k.pem")]
)  # fmt: skip
def test_a_monitor_checks_its_services_name_without_a_ca_of_the_charts(
    tls: tuple[str, ...],
) -> None:
    """Without httpTls.caKey the monitors scraped https with no serverName: Prometheus
    connects to pod IPs, and checked the certificate against the IP."""
    documents = render_chart(sets=(BOOTSTRAP, "metrics.serviceMonitor.enabled=true", *tls))
    for monitor in [d for d in documents if d["kind"] == "ServiceMonitor"]:
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["serverName"] == monitor["metadata"]["name"]


def test_the_rules_test_file_is_not_packaged(tmp_path: Any) -> None:
    """files/prometheus-rules.test.yaml says "not shipped"; `helm package` shipped it."""
    _helm("package", str(CHART), "--destination", str(tmp_path))
    (package,) = tmp_path.glob("*.tgz")
    with tarfile.open(package) as archive:
        names = archive.getnames()
    assert not [n for n in names if n.endswith("prometheus-rules.test.yaml")]
    assert [n for n in names if n.endswith("prometheus-rules.yaml")]


def test_the_values_reference_lists_each_agent_sets_values() -> None:
    """`agents.sets.<set>.agents / replicas / enabled / resources` were in the schema (and
    ci/production-values.yaml) but not in docs/deploy.md's values table."""
    from streamlearn.deploy.values_reference import values_reference

    table = values_reference()
    for value in ("enabled", "agents", "replicas", "resources"):
        assert f"| `agents.sets.<name>.{value}` |" in table


def test_the_helm_test_script_passes_against_a_registry_that_asks_for_a_password(
    tmp_path: Any,
) -> None:
    """The rendered test pod's own script, run against local HTTP servers standing in for
    the Services (their names pointed at 127.0.0.1): the registry answers 401 without the
    password, as one that asks for it does."""
    import base64
    import http.server
    import os
    import subprocess
    import sys
    import threading

    documents = render_chart(
        sets=(BOOTSTRAP, "secretConfig.values.schema_registry_basic_auth=u:pw")
    )
    (test,) = [d for d in documents if d["metadata"]["name"].endswith("-test-predict")]
    script = test["spec"]["containers"][0]["args"][0]
    asked: list[tuple[str, str | None]] = []

    class Stand(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: bytes = b"{}") -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            asked.append((self.path, self.headers.get("Authorization")))
            wanted = "Basic " + base64.b64encode(b"u:pw").decode()
            if self.path == "/subjects" and self.headers.get("Authorization") != wanted:
                self._answer(401)
            else:
                self._answer(200, b"[]")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._answer(200, b'{"predictions": [{"score": 0.5}]}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stand)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for host in ("rel-streamlearn-collector:8001", "rel-streamlearn-serve:8000",
                     "rel-streamlearn-registry:8081"):  # fmt: skip
            script = script.replace(host, f"127.0.0.1:{port}")
        environment = {**os.environ, "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH": "u:pw"}
        result = subprocess.run(
            [sys.executable, "-c", script], env=environment, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert ("/subjects", "Basic " + base64.b64encode(b"u:pw").decode()) in asked


@pytest.mark.parametrize(
    ("setting", "where"),
    [
        ("config.serve_api_tokens={t}", "secretConfig.values.serve_api_tokens"),
        ("config.model_signing_key=k", "signing.key or signing.existingSecret"),
        ("config.topic_prefix=x", "topics.prefix"),
        ("config.kafka_bootstrap=k:9092", "kafka.bootstrapServers"),
        ("config.data_dir=/d", "set by the chart from the pod layout"),
        ("config.kafka_heap=1g", "a setting of the embedded broker"),
    ],
)
def test_a_setting_put_under_config_that_goes_elsewhere_says_where(
    setting: str, where: str
) -> None:
    """A secret (or a setting the chart makes) put under `config` was refused with Helm's
    "additional properties 'serve_api_tokens' not allowed", which says neither that it is
    a known setting nor where it goes."""
    result = _template("--set", BOOTSTRAP, "--set", setting)
    assert result.returncode != 0
    assert where in result.stderr, result.stderr
    assert "additional properties" not in result.stderr


def test_a_kafka_tls_secret_without_a_ca_leaves_the_system_s_cas() -> None:
    """Found by a new user: `kafka.tls.caKey=` (mutual TLS against a publicly signed
    broker) set STREAMLEARN_KAFKA_SSL_CAFILE to the mount's directory."""
    documents = render_chart(
        sets=("kafka.bootstrapServers=kafka:9093", "kafka.securityProtocol=SSL",
              "kafka.tls.existingSecret=kt", "kafka.tls.certKey=tls.crt", "kafka.tls.caKey="),
    )  # fmt: skip
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"
                 and d["metadata"]["name"].endswith("-settings")]  # fmt: skip
    assert "STREAMLEARN_KAFKA_SSL_CAFILE" not in config["data"]
    assert config["data"]["STREAMLEARN_KAFKA_SSL_CERTFILE"] == "/etc/streamlearn/kafka-tls/tls.crt"


def _notes(tmp_path: Any, *sets: str, json_sets: tuple[str, ...] = ()) -> str:
    """NOTES.txt as `helm install` prints it (helm template does not render it): the chart
    copied with a ConfigMap that renders the notes' text."""
    import shutil

    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "notes.txt").write_text((chart / "templates" / "NOTES.txt").read_text())
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n"
        '  notes: |\n    {{- tpl (.Files.Get "notes.txt") . | nindent 4 }}\n'
    )
    args = [a for s in sets for a in ("--set", s)]
    args += [a for s in json_sets for a in ("--set-json", s)]
    result = _helm("template", "rel", str(chart), "--kube-version", "1.30.0", *args,
                   "--show-only", "templates/zz-notes.yaml")  # fmt: skip
    import yaml

    return str(yaml.safe_load(result.stdout)["data"]["notes"])


def test_the_notes_say_how_to_reach_the_release_as_it_is_deployed(tmp_path: Any) -> None:
    """Found by a new user: the notes listed agent sets that were disabled, and their curls
    were plain HTTP without a token or write key, whatever the release asked for."""
    notes = _notes(
        tmp_path, BOOTSTRAP, "agents.sets.preprocess.enabled=false",
        "agents.sets.sessionise.enabled=false", "httpTls.existingSecret=certs",
        json_sets=('agents.sets.ingest={"agents": ["preprocess", "sessionise"]}',
                   'secretConfig.values={"serve_api_tokens": ["0123456789abcdefgh"],'
                   ' "collector_write_keys": {"wk-0123456789abcdef": "shop"}}'),
    )  # fmt: skip
    assert "Agent sets: ingest, label-join, learner, monitor (" in notes
    assert "curl -k -X POST https://localhost:8001/v1/events" in notes
    assert "curl -k -X POST https://localhost:8000/v1/models/ctr:predict" in notes
    assert "Authorization: Bearer <one of serve_api_tokens>" in notes
    assert "X-Streamlearn-Write-Key: <one of collector_write_keys>" in notes
    assert "0123456789abcdefgh" not in notes
    plain = _notes(tmp_path / "plain", BOOTSTRAP)
    assert "curl -X POST http://localhost:8001/v1/events" in plain
    assert "Bearer" not in plain


def test_a_registry_url_with_a_password_is_refused_and_a_trailing_slash_is_dropped() -> None:
    """Found by a new user: `schemaRegistry.url=https://user:pw@reg.example.com` rendered,
    its password in the ConfigMap, the helm test's arguments and the notes; and a trailing
    slash made the test ask `.../v7//subjects`."""
    result = _template(
        "--set", BOOTSTRAP, "--set", "schemaRegistry.url=https://user:pw@reg.example"
    )
    assert result.returncode != 0
    assert "/schemaRegistry/url" in result.stderr
    documents = render_chart(sets=(BOOTSTRAP, "schemaRegistry.url=https://reg.example/v7/"))
    (test,) = [d for d in documents if d["metadata"]["name"].endswith("-test-predict")]
    assert (
        'registry = "https://reg.example/v7/subjects"' in test["spec"]["containers"][0]["args"][0]
    )


def test_two_releases_dashboards_do_not_replace_each_other() -> None:
    """Found by a new user: the Grafana dashboard's uid was "streamlearn" in every release
    (and its sidecar file `streamlearn.json`), so a second release's replaced the first's."""
    import json

    import yaml

    seen = []
    for release in ("ml", "ml-eu"):
        result = _template("--set", BOOTSTRAP, "--set", "metrics.grafanaDashboard.enabled=true",
                           release=release)  # fmt: skip
        assert result.returncode == 0, result.stderr
        (config,) = [d for d in yaml.safe_load_all(result.stdout)
                     if d and d["metadata"]["name"].endswith("-dashboard")]  # fmt: skip
        ((key, text),) = config["data"].items()
        dashboard = json.loads(text)
        seen.append((key, dashboard["uid"], dashboard["title"]))
        assert len(dashboard["uid"]) <= 40  # Grafana's limit
        assert release in dashboard["title"]
    (key_a, uid_a, title_a), (key_b, uid_b, title_b) = seen
    assert (key_a != key_b, uid_a != uid_b, title_a != title_b) == (True, True, True), seen
