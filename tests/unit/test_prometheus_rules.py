"""The chart's alerting rules and dashboard, without Prometheus: `promtool check rules`, the
rules' own unit tests (`promtool test rules`, files/prometheus-rules.test.yaml) with a firing
and a quiet case for every alert, the PrometheusRule carrying exactly the rules file (never its
tests), and every dashboard query a valid PromQL expression."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "streamlearn"
RULES = CHART / "files" / "prometheus-rules.yaml"
RULE_TESTS = CHART / "files" / "prometheus-rules.test.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
HELM = ROOT / ".tools" / "bin" / "helm"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables, as Prometheus would see them once Grafana replaced them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run ./scripts/bootstrap_deploy")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, check=False, cwd=ROOT
    )


def _alerts() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = _alerts()
    assert len(alerts) == len(set(alerts)), "alert names are unique"
    assert not sorted(set(alerts) - firing), "alerts without a case where they fire"
    assert not sorted(set(alerts) - quiet), "alerts without a case where they must not fire"
    assert not sorted((firing | quiet) - set(alerts)), "cases of alerts that do not exist"


def test_prometheus_rule_carries_the_rules_file_only() -> None:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run ./scripts/bootstrap_deploy")
    result = subprocess.run(
        [
            str(HELM), "template", "rel", str(CHART), "--kube-version", "1.30.0",
            "--set", "metrics.prometheusRule.enabled=true",
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    documents = [d for d in yaml.safe_load_all(result.stdout) if d]
    rules = [d for d in documents if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1
    assert rules[0]["spec"] == yaml.safe_load(RULES.read_text())


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            expr: str = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append((f"dashboard:panel_{panel['id']}_{target['refId']}", expr))
    return queries


def test_dashboard_panels_are_unique_and_their_queries_parse(tmp_path: Path) -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert any(p["type"] == "row" and p["title"] == "Data quality" for p in dashboard["panels"])
    # promtool parses queries only as rules: every query becomes a recording rule.
    rules = [{"record": name, "expr": expr} for name, expr in _dashboard_queries()]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = _promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr
