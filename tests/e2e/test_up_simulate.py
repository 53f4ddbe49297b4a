"""The README's first command, CI-sized and with every door shut:
`streamlearn up --simulate --secure --duration N --json`.

The whole system runs as it does for a user (registry, one process per agent, collector,
prediction worker, all supervised by `up`, with simulated people calling the real HTTP
APIs); the summary it prints must show the loop closed: data through every stage, noise
filtered and counted, no part crashed or restarted, every process exited cleanly, and the
`ctr` model learned the simulated world.

It runs as production would (docs/security.md), which the loop must survive unchanged:
- Kafka's doors: `up` starts its own embedded broker in the secure mode (SASL_SSL,
  SCRAM-SHA-512) with Kafka's StandardAuthorizer, applies the ACLs `streamlearn acls plan`
  derives and runs each part as its own user. The broker denies what no ACL allows, so a
  part that needed more than its plan would be refused and stop; the broker's log must
  hold no denial.
- HTTP's doors: the servers speak HTTPS only, the prediction API wants a bearer token,
  the collector a write key, the registry basic auth on writes; `up` and its simulator get
  through them with the settings.
No password of the broker's users and no HTTP secret may appear in what `up` printed or in
any log. (`test_chaos` runs `up --simulate` with every door open, as the README's first
command does; `tests/integration/test_up.py` runs `up` against a broker it did not start,
under a topic prefix.) One run checks both sets of doors: each run of the whole system
costs about two minutes of the suite's two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from streamlearn.kafka_local import free_port
from streamlearn.kafka_local.secure import (
    AUTHORIZER,
    ensure_secure_material,
    existing_secure_material,
)
from tests.e2e.part_logs import unclean_logs

DURATION_S = 75

pytestmark = pytest.mark.slow


API_TOKEN = "e2e-api-token-7f3a"
WRITE_KEY = "e2e-write-key-51c9"
REGISTRY_WRITER = "up:e2e-registry-pass-90d2"


def _doors(tls_dir: Path) -> dict[str, str]:
    """The settings that turn every HTTP door on (a CA and a certificate for 127.0.0.1)."""
    material = ensure_secure_material(tls_dir, "127.0.0.1")
    return {
        "STREAMLEARN_HTTP_TLS_CERTFILE": str(material.broker_pem_path),
        "STREAMLEARN_HTTP_TLS_CAFILE": str(material.ca_path),
        "STREAMLEARN_SERVE_API_TOKENS": json.dumps([API_TOKEN]),
        "STREAMLEARN_COLLECTOR_WRITE_KEYS": json.dumps({WRITE_KEY: "simulated-shop"}),
        "STREAMLEARN_REGISTRY_WRITERS": json.dumps([REGISTRY_WRITER]),
        "STREAMLEARN_SCHEMA_REGISTRY_BASIC_AUTH": REGISTRY_WRITER,
    }


def _up(
    data_dir: Path, *arguments: str, timeout_s: float
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "STREAMLEARN_DATA_DIR": str(data_dir), **_doors(data_dir.parent / "tls")}
    # Its own broker (the secure mode), no prefix: the session's broker is left alone.
    for name in ("STREAMLEARN_SCHEMA_REGISTRY_URL", "STREAMLEARN_KAFKA_BOOTSTRAP",
                 "STREAMLEARN_TOPIC_PREFIX"):  # fmt: skip
        env.pop(name, None)
    ports = [str(free_port()) for _ in range(5)]
    completed = subprocess.run(
        [sys.executable, "-m", "streamlearn", "up", "--port", ports[0],
         "--registry-port", ports[1], "--collector-port", ports[2], "--serve-port", ports[3],
         "--dashboard-port", ports[4], "--json", *arguments],
        env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    assert completed.stdout.strip(), completed.stderr[-5000:]
    return completed, json.loads(completed.stdout.strip().splitlines()[-1])


def test_up_simulate_closes_the_loop_with_every_door_shut(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    completed, summary = _up(
        data_dir, "--simulate", "--secure", "--duration", str(DURATION_S),
        timeout_s=DURATION_S + 240,
    )  # fmt: skip
    print(json.dumps({k: v for k, v in summary.items() if k != "simulator"}, indent=1))
    failed = [c for c in summary["checks"] if not c["passed"]]
    for name, tail in unclean_logs(summary, data_dir).items():
        print(f"--- the end of {name}.log (it did not stop cleanly)\n{tail}")
    assert summary["ok"], (failed, completed.stderr[-5000:])
    assert completed.returncode == 0, completed.stderr[-5000:]
    # A run with a duration does not ask for a Ctrl-C it will not need.
    assert f"stopping after {DURATION_S:g}s" in completed.stderr
    assert "(SASL_SSL, SCRAM-SHA-512)" in completed.stderr
    assert "each part connects as its own Kafka user" in completed.stderr
    assert "press Ctrl-C to stop" not in completed.stderr

    events, simulation = summary["events"], summary["simulation"]
    # Every stage saw data: collector → preprocess → sessionise; worker → label-join → learner.
    assert events["in"] > 0.9 * summary["simulator"]["accepted"]["event"]
    assert events["clean"] > 0.8 * events["in"]
    assert summary["sessions"]["open"] + summary["sessions"]["closed"] > 0
    assert summary["predictions"]["served"] >= summary["simulator"]["predictions"] > 0
    assert summary["examples"]["positives"] > 0
    assert summary["examples"]["negatives"] > 0
    assert summary["examples"]["unseen"] > 0  # served, never seen: counted, not trained
    # Noise was filtered and counted where it belongs.
    assert events["bots"] > 0
    assert set(summary["bot_rules"]) >= {"crawler_user_agent"}
    assert events["duplicates"] > 0
    malformed = simulation["generated"]["malformed"]
    assert 0 < simulation["malformed_refused"] <= malformed
    if not simulation["dropped"]:  # a loaded machine times out sends: dropped, counted
        assert simulation["malformed_refused"] == malformed
    assert events["refused_by_collector"] == simulation["malformed_refused"]
    # The model learned the simulated world, and the worker served what the learner made.
    ctr = summary["models"]["ctr"]
    assert ctr["versions_published"] >= 10
    assert ctr["version"] >= 10
    assert ctr["auc"] >= 0.75
    # No model ranks the clicks users got better than their true probabilities do (a label
    # leaking into the features would). The bound is on the served scores, which were given
    # before any label existed: the prequential AUC may pass the ceiling in a short run (CI:
    # 0.847 against 0.818), because positives are scored early by a model that has seen
    # mostly positives and the delayed negatives later by one that has learned them.
    assert ctr["served_auc"] <= simulation["truth_auc_ceiling"] + 0.02
    # What users got, over the learner's last served examples (all of them in a short run):
    # the learning lab serves ctr 0.744 against a ceiling of 0.816 over the first 75 s at
    # this rate (cold start: positives arrive before negatives), so the margin is wide.
    assert ctr["recent_served_auc"] >= simulation["truth_auc_ceiling"] - 0.2
    assert 0.0 <= ctr["recent_ece"] <= 1.0
    assert ctr["freshness_ms"]["p99"] < 1000
    assert set(simulation["ctr_by_arm"]) == {"logistic", "tree"}
    processes = summary["processes"]
    assert set(processes) == {
        "registry", "preprocess", "sessionise", "label-join", "learner", "monitor", "archive",
        "collector", "serve", "dashboard", "kafka",
    }  # fmt: skip
    assert all(p["clean"] and not p["crashes"] for p in processes.values()), processes
    assert all(p["exit_code"] == 0 for name, p in processes.items() if name != "kafka")
    # Kafka's doors: every part worked under its own user and was refused nothing.
    broker_log = (data_dir / "kafka" / "logs" / "server.log").read_text(errors="replace")
    assert f"authorizer.class.name = {AUTHORIZER}" in broker_log
    denied = [line for line in broker_log.splitlines() if " is Denied " in line]
    assert not denied, denied[:5]
    material = existing_secure_material(data_dir / "kafka")
    assert material is not None
    assert material.authorizer
    # Through the doors: the simulator's events were accepted with its write key and its
    # predictions answered with its token (counted above), and no secret was written out.
    written = completed.stdout + completed.stderr
    written += "".join(log.read_text(errors="replace") for log in data_dir.rglob("*.log"))
    for secret in (API_TOKEN, WRITE_KEY, REGISTRY_WRITER.split(":")[1]):
        assert secret not in written
    for password in material.passwords.values():
        assert password not in written
    assert "https://127.0.0.1" in completed.stderr
