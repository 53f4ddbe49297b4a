"""An agent worker process answers Kubernetes' probes and Prometheus on its metrics port."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from confluent_kafka.admin import AdminClient

from streamlearn.kafka_local import embedded_kafka, free_port
from streamlearn.settings import Settings
from streamlearn.topology import apply_topology, desired_topics, load_topology
from tests.agent_workers import Workers, running
from tests.conftest import REPO_ROOT

GRACE_S = 45
"""Under the chart's terminationGracePeriodSeconds (60), with room for a loaded machine."""


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""  # not listening yet


def test_an_agent_worker_serves_probes_and_metrics(
    system_settings: Settings, tmp_path: Path
) -> None:
    workers = Workers(system_settings.model_copy(update={"data_dir": tmp_path}), "preprocess")
    port = free_port()
    workers.args += ["--metrics-port", str(port)]
    base = f"http://127.0.0.1:{port}"
    with running(workers, 1):
        deadline = time.monotonic() + 90
        statuses = []
        while time.monotonic() < deadline:
            status, body = _get(f"{base}/readyz")
            statuses.append(status)
            if status == 200:
                break
            time.sleep(0.2)
        assert status == 200, f"never ready: {statuses[-5:]}"
        assert 503 in statuses or 0 in statuses, "not ready before it had joined"
        # The pid: `up` tells its own child's answer from another process's on the port.
        assert json.loads(body) == {"status": "ready", "pid": workers.started[0].pid}
        status, body = _get(f"{base}/healthz")
        assert status == 200
        assert json.loads(body)["status"] == "ok"
        assert json.loads(body)["pid"] == workers.started[0].pid
        status, body = _get(f"{base}/metrics")
        assert status == 200
        assert b"streamlearn_preprocess_events_total" in body
        # Only its own agents' figures (a preprocess worker said "open sessions 0").
        assert b"streamlearn_sessionise_open_sessions" not in body
        assert b"streamlearn_learner_snapshots" not in body
        # Each input partition's position and lag (refreshed every 5 s): a partition
        # that is not read shows there, while the worker stays ready.
        wanted = [
            f'streamlearn_agent_partition_lag{{partition="{p}",topic="telemetry.events"}} 0.0'
            for p in range(6)
        ]
        while not all(line in body.decode() for line in wanted):
            assert time.monotonic() < deadline + 30, body.decode()
            time.sleep(0.5)
            status, body = _get(f"{base}/metrics")
        assert _get(f"{base}/other")[0] == 404


def test_an_agent_worker_told_to_stop_while_its_broker_is_away_stops_within_the_grace(
    system_settings: Settings, tmp_path: Path
) -> None:
    """Found by a new user: SIGTERM with the broker stopped took 62 s, past the chart's
    60 s grace (then a SIGKILL): aiokafka's consumer thread died stopping, and the worker
    waited out mode's 60 s for it."""
    broker = embedded_kafka(Settings(), port=free_port(), data_dir=tmp_path / "kafka")
    status = broker.start(timeout_s=120)
    assert status.bootstrap is not None
    try:
        settings = system_settings.model_copy(
            update={"data_dir": tmp_path / "data", "kafka_bootstrap": status.bootstrap}
        )
        topology = load_topology(REPO_ROOT / "topology" / "topics.yaml")
        apply_topology(
            AdminClient({"bootstrap.servers": status.bootstrap}),
            desired_topics(topology, settings.topic_prefix),
        )
        workers = Workers(settings, "preprocess")
        port = free_port()
        workers.args += ["--metrics-port", str(port)]
        process = workers.start()
        deadline = time.monotonic() + 90
        while _get(f"http://127.0.0.1:{port}/readyz")[0] != 200:
            assert time.monotonic() < deadline, "never ready"
            assert process.poll() is None, "the worker exited"
            time.sleep(0.2)
        broker.stop()
        while _get(f"http://127.0.0.1:{port}/readyz")[0] == 200:
            assert time.monotonic() < deadline + 30, "the broker's absence went unseen"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        try:
            process.wait(timeout=GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"still running {time.monotonic() - stopping:.0f}s after SIGTERM"
            ) from None
    finally:
        gc.collect()
        broker.stop()
