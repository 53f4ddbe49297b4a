"""A model whose pipeline raises on some examples, with a real learner process on the real
broker: the examples it raises on go to ``events.rejected`` as ``model_error``, and the
learner, its other examples and the other model of the partition (``ctr``) learn on.
Before, the first such example stopped the learner agent, at every restart again (it is
read again from the snapshot's offsets): no snapshot of either model after it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from streamlearn.kafka_clients import key_partition
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from tests.agent_workers import Workers, read_topic, running
from tests.support import click_examples, committed_to_end

SITE = Path(__file__).parent / "model_error_site"
"""Its sitecustomize adds the ``price_only`` spec in the learner process."""
REPO = Path(__file__).parents[2]
EXAMPLES = 300


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(update={"data_dir": tmp_path})


def _examples() -> tuple[list[tuple[bytes, dict[str, Any]]], list[str]]:
    """ctr's and price_only's examples, interleaved; every tenth of price_only's without
    a price (and those request ids)."""
    records: list[tuple[bytes, dict[str, Any]]] = []
    without = []
    ctr = click_examples(EXAMPLES, seed=5)
    picky = click_examples(EXAMPLES, seed=6, model_name="price_only")
    for i, (mine, theirs) in enumerate(zip(picky, ctr, strict=True)):
        mine["request_id"] = f"p-{mine['request_id']}"
        if i % 10 == 3:
            mine["features"] = {k: v for k, v in mine["features"].items() if k != "price"}
            without.append(mine["request_id"])
        records += [(b"price_only", mine), (b"ctr", theirs)]
    return records, without


def _decoded(
    settings: Settings, registry: RegistryClient, topic: str, schema: str, at_least: int
) -> list[dict[str, Any]]:
    """The records of our ``topic`` (waiting for ``at_least`` of them), decoded."""
    serde = AvroSerde.for_topic(registry, settings.topic_prefix + topic, schema)
    messages = read_topic(settings, topic, lambda m: len(m) >= at_least > 0, timeout_s=10)
    return [serde.decode(m.value()) for m in messages]


def test_a_model_raising_on_some_examples_does_not_stop_the_learner(settings: Settings) -> None:
    assert key_partition(b"price_only", 6) == key_partition(b"ctr", 6)  # one partition
    records, without = _examples()
    with RegistryClient(settings.schema_registry_url) as registry:
        topic = settings.topic_prefix + "training.examples"
        serde = AvroSerde.for_topic(registry, topic, "TrainingExample")
        # Partitioned as every streamlearn producer does (murmur2, as Kafka's Java client).
        producer = Producer(
            {"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "murmur2_random"}
        )
        for key, record in records:
            producer.produce(topic, key=key, value=serde.encode(record))
        assert producer.flush(30) == 0
        # The learner's interpreter loads the test's sitecustomize.
        path = [str(SITE), str(REPO)]
        learner = Workers(
            settings,
            only="learner",
            group="learner",
            PYTHONPATH=os.pathsep.join(path),
            STREAMLEARN_MODELS='["ctr", "price_only"]',
            STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES="100",
            STREAMLEARN_SNAPSHOT_EVERY_S="600",
        )
        with running(learner, 1):
            deadline = time.monotonic() + 120
            while not committed_to_end(settings, "training.examples", learner.group_id):
                assert time.monotonic() < deadline, "the learner did not get past the examples"
                time.sleep(0.5)
        snapshots = _decoded(settings, registry, "model.state", "ModelSnapshot", 0)
        rejected = _decoded(settings, registry, "events.rejected", "RejectedRecord", len(without))
    trained = {}
    for snapshot in snapshots:
        trained[snapshot["model_name"]] = snapshot["trained_examples"]
    # Every example learned, but those the model raised on (the last published at stop).
    assert trained == {"ctr": EXAMPLES, "price_only": EXAMPLES - len(without)}
    # The bytes as read (keyed by model name): the example can be mended and sent again.
    ids = [serde.decode(bytes(r["value"]))["request_id"] for r in rejected]
    assert sorted(ids) == sorted(without)
    for record in rejected:
        assert (record["reason"], record["agent"]) == ("model_error", "learner")
        assert record["detail"] == "price_only: KeyError: 'price'"
    # A replay leaves out the same examples: the model is a function of the log.
    verified = _replay(learner, "verify", "price_only", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "3 version(s) verified" in verified.stdout
    replayed = _replay(learner, "model", "price_only")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert (
        f"{2 * EXAMPLES} records read: {EXAMPLES - len(without)} learned, {len(without)} the "
        f"model failed on (raised, or scored non-finite), {EXAMPLES} of another model or arm"
    ) in replayed.stdout
    assert "warning: the model failed on 30 examples, not learned; the first at " in (
        replayed.stderr
    )
    assert "offset 6: KeyError: 'price'" in replayed.stderr


def _replay(learner: Workers, *args: str) -> subprocess.CompletedProcess[str]:
    """``streamlearn replay *args`` in a process with the learner's environment (its
    sitecustomize adds ``price_only``)."""
    command = [sys.executable, "-m", "streamlearn", "replay", *args]
    return subprocess.run(command, env=learner.env, capture_output=True, text=True, timeout=120)
