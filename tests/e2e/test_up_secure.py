"""`streamlearn up --simulate --secure`: the loop closes with Kafka's doors shut.

`up` starts its own embedded broker in the secure mode (SASL_SSL, SCRAM-SHA-512) with
Kafka's StandardAuthorizer, applies the ACLs `streamlearn acls plan` derives and runs each
part as its own user (docs/security.md). The broker denies what no ACL allows, so a part
that needed more than its plan would be refused and stop: the run must pass every check
of `up` with no part restarted and the broker must have denied nothing. No password of
the broker's users may appear in what `up` printed or in any log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamlearn.kafka_local import free_port
from streamlearn.kafka_local.secure import AUTHORIZER, existing_secure_material

DURATION_S = 50

pytestmark = pytest.mark.slow


def test_up_secure_runs_every_part_as_its_own_kafka_user(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    # Snapshots every 2 s: `up`'s own check wants 10 versions of ctr, in a short run.
    env = {**os.environ, "STREAMLEARN_DATA_DIR": str(data_dir), "STREAMLEARN_SNAPSHOT_EVERY_S": "2"}
    for name in ("STREAMLEARN_SCHEMA_REGISTRY_URL", "STREAMLEARN_KAFKA_BOOTSTRAP",
                 "STREAMLEARN_TOPIC_PREFIX"):  # fmt: skip
        env.pop(name, None)
    ports = [str(free_port()) for _ in range(5)]
    completed = subprocess.run(
        [sys.executable, "-m", "streamlearn", "up", "--simulate", "--secure",
         "--duration", str(DURATION_S), "--json", "--port", ports[0],
         "--registry-port", ports[1], "--collector-port", ports[2], "--serve-port", ports[3],
         "--dashboard-port", ports[4]],
        env=env, capture_output=True, text=True, timeout=DURATION_S + 200,
    )  # fmt: skip
    assert completed.stdout.strip(), completed.stderr[-5000:]
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    failed = [c for c in summary["checks"] if not c["passed"]]
    assert summary["ok"], (failed, completed.stderr[-5000:])
    assert completed.returncode == 0, completed.stderr[-5000:]
    assert "(SASL_SSL, SCRAM-SHA-512)" in completed.stderr
    assert "each part connects as its own Kafka user" in completed.stderr

    # Every stage worked under its own user: events cleaned and sessionised, predictions
    # joined with feedback, the learner's versions served, the monitor and archive up.
    events = summary["events"]
    assert events["clean"] > 0.8 * events["in"] > 0
    assert summary["sessions"]["open"] + summary["sessions"]["closed"] > 0
    assert summary["examples"]["positives"] > 0
    assert summary["examples"]["negatives"] > 0
    assert summary["models"]["ctr"]["version"] >= 3
    processes = summary["processes"]
    assert set(processes) == {
        "registry", "preprocess", "sessionise", "label-join", "learner", "monitor", "archive",
        "collector", "serve", "dashboard", "kafka",
    }  # fmt: skip
    assert all(p["clean"] and not p["crashes"] for p in processes.values()), processes

    broker_log = (data_dir / "kafka" / "logs" / "server.log").read_text(errors="replace")
    assert f"authorizer.class.name = {AUTHORIZER}" in broker_log
    denied = [line for line in broker_log.splitlines() if " is Denied " in line]
    assert not denied, denied[:5]

    material = existing_secure_material(data_dir / "kafka")
    assert material is not None
    assert material.authorizer
    written = completed.stdout + completed.stderr
    written += "".join(log.read_text(errors="replace") for log in data_dir.rglob("*.log"))
    for password in material.passwords.values():
        assert password not in written
