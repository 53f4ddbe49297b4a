"""An agent worker whose topics grow partitions under it stops, so that it restarts on them.

A running worker places the keys it writes by the partition counts it started with and
sized its stores by them (docs/topics.md, "Growing partitions of a running deployment").
Before, an operator who ran `streamlearn topics apply` with more partitions and forgot to
restart the agents had workers that went on with the old counts, without a word: a key's
records in two partitions, sessions split, feedback not joined. Now the worker notices
within a check's interval, says which topic grew from what to what, stops cleanly and exits
with a code of its own, on which its supervisor (`up`, Kubernetes) starts it again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Collection
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from streamlearn.runtime.partition_growth import PARTITION_CHECK_S, PARTITIONS_GREW_EXIT
from streamlearn.settings import Settings
from streamlearn.topology.copartitioned import AGENT_INPUTS
from tests.agent_workers import Workers, running

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


def apply_with_more_partitions(
    settings: Settings, topics: Collection[str], partitions: int, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`streamlearn topics apply` of the project's topology with ``topics`` grown, as an
    operator runs it."""
    topology = yaml.safe_load((REPO_ROOT / "topology" / "topics.yaml").read_text())
    for entry in topology["topics"]:
        if entry["name"] in topics:
            entry["partitions"] = partitions
    grown = settings.data_dir / "topics-grown.yaml"
    grown.write_text(yaml.safe_dump(topology))
    return subprocess.run(
        [sys.executable, "-m", "streamlearn", "topics", "apply", "--file", str(grown)],
        env={
            "PATH": "/usr/bin:/bin",
            "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
            "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
            "STREAMLEARN_DATA_DIR": str(settings.data_dir),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def test_a_worker_stops_when_topics_it_reads_and_writes_grow(settings: Settings) -> None:
    workers = Workers(settings, only="preprocess", group="streamlearn-preprocess")
    process = workers.start()
    log = settings.data_dir / f"worker-{settings.topic_prefix}streamlearn-preprocess-1.log"
    try:
        workers.wait_for_members(1)
        # The agents' inputs grow together (`apply` refuses to grow one of them alone).
        agent_inputs = {topic for inputs in AGENT_INPUTS.values() for topic in inputs}
        apply_with_more_partitions(settings, agent_inputs, 8)
        code = process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        workers.stop()
        pytest.fail(f"the worker went on after its topics grew:\n{log.read_text()}")
    finally:
        workers.stop()
    output = log.read_text()
    assert code == PARTITIONS_GREW_EXIT, output
    prefix = settings.topic_prefix
    assert (
        f"topic {prefix}telemetry.events, which this worker reads, has 8 partitions; "
        "it started with 6" in output
    ), output
    assert (
        f"topic {prefix}events.clean, which this worker writes, has 8 partitions; "
        "it started with 6" in output
    ), output
    assert "restart on the new count" in output, output
    # A clean stop: Faust's shutdown ran (offsets committed, producers flushed).
    assert "Traceback" not in output, output

    # Started again, as its supervisor does, it runs on the new count (its stores'
    # changelogs grown with its inputs) and stays up past a check.
    again = Workers(settings, only="preprocess", group="streamlearn-preprocess", label="-again")
    with running(again, 1):
        again.wait_for_members(1)
        time.sleep(PARTITION_CHECK_S + 5)
        assert again.started[0].poll() is None, "the restarted worker stopped again"


def test_apply_refuses_to_grow_one_of_the_inputs_an_agent_reads_together(
    settings: Settings, admin: AdminClient
) -> None:
    """label-join (and the monitor) read telemetry.predictions and telemetry.feedback
    together and refuse to start on unequal counts: grown alone, feedback stopped the
    running label-join for good (restarted, it refused to start, again and again)."""
    done = apply_with_more_partitions(settings, {"telemetry.feedback"}, 8, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    output = done.stdout + done.stderr
    feedback = f"{settings.topic_prefix}telemetry.feedback"
    predictions = f"{settings.topic_prefix}telemetry.predictions"
    assert f"{feedback} would have 8 partitions and {predictions} 6" in output, output
    assert "label-join" in output, output
    assert "grow them together" in output, output
    metadata = admin.list_topics(feedback, timeout=30)
    assert len(metadata.topics[feedback].partitions) == 6  # nothing changed
