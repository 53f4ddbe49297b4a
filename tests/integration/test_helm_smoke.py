"""The chart wires a working system, proved without a cluster.

`helm template` renders the chart against the session's broker; each hook Job and each
Deployment's container then runs as a local process with exactly the rendered command,
arguments and environment (ConfigMap and Secret values resolved, Services resolved to the
local ports their pods listen on, as cluster DNS would). Only what a pod's network and
volumes give differs locally: ports are made unique (every pod has its own IP in a
cluster), listening is on 127.0.0.1, and /data and /tmp are the test's directories. The
simulator then drives the collector and the prediction worker, and the loop must close.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamlearn.kafka_local import free_port
from tests.agent_workers import read_topic
from tests.unit.test_helm_chart import render_chart

pytestmark = pytest.mark.slow


@dataclass
class Part:
    """A Deployment's or Job's container, as a local process."""

    name: str
    args: list[str]
    env: dict[str, str]
    port: int | None  # its (local) listening port
    ready_path: str | None


def _resolved_env(container: dict[str, Any], configs: dict[str, dict[str, str]],
                  secrets: dict[str, dict[str, str]]) -> dict[str, str]:  # fmt: skip
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configs[source["configMapRef"]["name"]])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        reference = item["valueFrom"]["secretKeyRef"]
        env[item["name"]] = secrets[reference["name"]][reference["key"]]
    return env


def _parts(documents: list[dict[str, Any]], data_root: Path) -> tuple[list[Part], list[Part]]:
    """(hook jobs in hook order, deployments); ports made local, services resolved."""
    configs = {d["metadata"]["name"]: d["data"] for d in documents if d["kind"] == "ConfigMap"}
    secrets = {
        d["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in d["data"].items()}
        for d in documents
        if d["kind"] == "Secret"
    }
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    local_port: dict[tuple[str, int], int] = {}  # (deployment, container port) → local port
    service_address: dict[str, str] = {}  # "name:port" → "127.0.0.1:local"

    deployments = [d for d in documents if d["kind"] == "Deployment"]
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for port in container.get("ports", []):
            local_port[deployment["metadata"]["name"], port["containerPort"]] = free_port()
    for name, service in services.items():
        # A Service and its Deployment share the name in this chart; the selector says so.
        port = service["spec"]["ports"][0]["port"]
        service_address[f"{name}:{port}"] = f"127.0.0.1:{local_port[name, port]}"

    def part(owner: dict[str, Any]) -> Part:
        name = owner["metadata"]["name"]
        container = owner["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["streamlearn"]
        env = _resolved_env(container, configs, secrets)
        for key, value in env.items():
            for address, local in service_address.items():
                env[key] = value = value.replace(f"//{address}", f"//{local}")
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert set(mounts) >= {"/data", "/tmp"}
        for key, value in list(env.items()):
            if value.startswith(("/data", "/tmp")):
                env[key] = str(data_root / name / value.lstrip("/"))
        args = list(container["args"])
        port = None
        for flag in ("--port", "--metrics-port"):
            if flag in args:
                index = args.index(flag) + 1
                port = local_port[name, int(args[index])]
                args[index] = str(port)
        args = ["127.0.0.1" if a == "0.0.0.0" else a for a in args]
        probe = container.get("readinessProbe")
        return Part(name, args, env, port, probe["httpGet"]["path"] if probe else None)

    def hook_order(job: dict[str, Any]) -> tuple[int, int]:
        annotations = job["metadata"]["annotations"]
        phase = 0 if "pre-install" in annotations["helm.sh/hook"] else 1
        return phase, int(annotations["helm.sh/hook-weight"])

    jobs = sorted((d for d in documents if d["kind"] == "Job"), key=hook_order)
    return [part(j) for j in jobs], [part(d) for d in deployments]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@pytest.fixture
def running_parts(tmp_path: Path) -> Iterator[Callable[[Part], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(part: Part) -> subprocess.Popen[bytes]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLEARN_")}
        with (tmp_path / f"{part.name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlearn", *part.args],
                env={**environ, **part.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    codes = []
    for process in started:
        try:
            codes.append(process.wait(timeout=60))
        except subprocess.TimeoutExpired:
            process.kill()
            codes.append(process.wait())
    assert all(code == 0 for code in codes), f"parts did not stop cleanly: {codes}"


def test_the_rendered_chart_runs_the_loop(
    kafka_bootstrap: str,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    running_parts: Callable[[Part], subprocess.Popen[bytes]],
) -> None:
    prefix = unique_name("") + "."
    documents = render_chart(
        sets=(
            f"kafka.bootstrapServers={kafka_bootstrap}",
            f"topics.prefix={prefix}",
            "signing.key=smoke-test-signing-key",
            "config.models={ctr}",
            "config.label_horizon_s=5",
            "config.label_allowed_lateness_s=2",
            "config.snapshot_every_s=2",
            "config.session_idle_s=2",
        )
    )
    jobs, deployments = _parts(documents, tmp_path)
    assert [j.args[:2] for j in jobs] == [["topics", "apply"], ["schemas", "register"]]
    by_name = {d.name.removeprefix("rel-streamlearn-"): d for d in deployments}
    registry = by_name.pop("registry")

    # pre-install hooks, the release's pods (the registry first: the post-install hook and
    # every part need it), post-install hooks.
    topics = running_parts(jobs[0])
    assert topics.wait(timeout=120) == 0, (tmp_path / f"{jobs[0].name}.log").read_text()
    parts = {"registry": (registry, running_parts(registry))}
    _wait_ready(registry, tmp_path)
    schemas = running_parts(jobs[1])
    assert schemas.wait(timeout=120) == 0, (tmp_path / f"{jobs[1].name}.log").read_text()
    for name, part in by_name.items():
        parts[name] = (part, running_parts(part))
    for part, _ in parts.values():
        _wait_ready(part, tmp_path)

    collector, serve = by_name["collector"], by_name["serve"]
    simulation = subprocess.run(
        [sys.executable, "-m", "streamlearn", "simulate", "--rate", "40", "--users", "200",
         "--duration", "25", "--seed", "5", "--json",
         "--collector-url", f"http://127.0.0.1:{collector.port}",
         "--predict-url", f"http://127.0.0.1:{serve.port}"],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    summary = json.loads(simulation.stdout.strip().splitlines()[-1])
    assert summary["accepted"]["event"] > 500, summary
    for name, (part, process) in parts.items():
        assert process.poll() is None, f"{name} exited: {_log(part, tmp_path)}"

    settings = _settings_of(kafka_bootstrap, prefix)
    clean = read_topic(settings, "events.clean", lambda m: len(m) >= 400, 60)
    assert len(clean) >= 400
    examples = read_topic(settings, "training.examples", lambda m: len(m) >= 50, 60)
    assert len(examples) >= 50
    deadline = time.monotonic() + 60
    version = 0
    while time.monotonic() < deadline and version < 2:
        with urllib.request.urlopen(f"http://127.0.0.1:{serve.port}/v1/models", timeout=5) as a:
            models = json.load(a)
        version = max((m.get("version") or 0 for m in _model_list(models)), default=0)
        time.sleep(1)
    assert version >= 2, f"the worker serves no learned model: {models}"


def _model_list(answer: Any) -> list[dict[str, Any]]:
    return list(answer["models"]) if isinstance(answer, dict) else list(answer)


def _settings_of(bootstrap: str, prefix: str) -> Any:
    from streamlearn.settings import Settings

    return Settings(kafka_bootstrap=bootstrap, topic_prefix=prefix)


def _log(part: Part, tmp_path: Path) -> str:
    return (tmp_path / f"{part.name}.log").read_text()[-3000:]


def _wait_ready(part: Part, tmp_path: Path, timeout_s: float = 120) -> None:
    assert part.port is not None
    assert part.ready_path is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _get(f"http://127.0.0.1:{part.port}{part.ready_path}") == 200:
            return
        time.sleep(0.25)
    raise AssertionError(f"{part.name} not ready: {_log(part, tmp_path)}")


def test_service_names_in_the_environment_are_the_rendered_services() -> None:
    """What the smoke test resolves like DNS is exactly what the chart renders."""
    documents = render_chart(sets=("signing.key=chart-test-signing-key",))
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    url = config["STREAMLEARN_SCHEMA_REGISTRY_URL"]
    name, port = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", url).groups()  # type: ignore[union-attr]
    service = next(d for d in documents if d["kind"] == "Service" and d["metadata"]["name"] == name)
    assert service["spec"]["ports"][0]["port"] == int(port)
    assert yaml.safe_dump(service)
