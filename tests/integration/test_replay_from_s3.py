"""A user who lost Kafka's retention rebuilds a model from the archive on S3 (moto's S3
server on 127.0.0.1), then finds an object of the bucket damaged.

Acceptance: `replay model --source archive --root s3://...` learns River's bytes from the
objects and Kafka; an object cut short (a partial copy or restore) or corrupt stops the
replay with one line naming the object, exit 1, the secret key nowhere in the output
(before: a truncated object's records were left out of the model without a word, and a
corrupt one was a fastavro traceback); a shadow replay stopped by it says how to delete
the part it copied.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import s3fs
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from streamlearn.archive import ArchiveAgent, ArchiveConfig, Limits, list_archive
from streamlearn.kafka_local import free_port
from streamlearn.runtime.topic_reader import end_offsets
from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from tests.agent_workers import worker_environment
from tests.cli_in_process import run_command
from tests.integration.test_archive import S3_KEY, s3_endpoint  # noqa: F401  (a fixture)
from tests.integration.test_replay import (
    CTR_PARTITION,
    _produce,
    _river,
    _serde,
    _snapshots,
)
from tests.support import click_examples

TOPIC = "training.examples"


def _archive_to(settings: Settings, root: str, options: dict[str, Any]) -> None:
    """The archive agent over ``training.examples`` until it has read every record; its
    graceful stop makes the last files final."""
    agent = ArchiveAgent(
        settings,
        ArchiveConfig(
            root=root,
            topics=(TOPIC,),
            limits=Limits(max_records=400),
            storage_options=options,
        ),
    )
    ends = {
        p: end
        for p, (_, end) in end_offsets(settings, settings.topic_prefix + TOPIC).items()
        if end
    }
    stop = threading.Event()
    running = threading.Thread(target=agent.run, args=(stop,))
    running.start()
    try:
        deadline = time.monotonic() + 60
        while not all(
            a.next_offset == ends.get(key[1]) for key, a in list(agent.archivers.items())
        ) or len(agent.archivers) < len(ends):
            assert time.monotonic() < deadline, "the archive did not read every record"
            time.sleep(0.2)
    finally:
        stop.set()
        running.join(timeout=60)
    assert not running.is_alive()


def test_a_model_rebuilt_from_s3_and_a_damaged_object_is_one_line(
    system_settings: Settings,
    tmp_path: Path,
    admin: AdminClient,
    s3_endpoint: str,  # noqa: F811
) -> None:
    settings = system_settings.model_copy(update={"data_dir": tmp_path})
    root = f"s3://archive-bucket/{settings.topic_prefix.rstrip('.')}"
    options = {"endpoint_url": s3_endpoint, "key": S3_KEY["AWS_ACCESS_KEY_ID"],
               "secret": S3_KEY["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    env = {**S3_KEY, "AWS_REGION": "us-east-1"}
    with RegistryClient(settings.schema_registry_url) as registry:
        encode = _serde(settings, registry, TOPIC, "TrainingExample").encode
        examples = click_examples(1500, seed=21)
        _produce(settings, TOPIC, [(b"ctr", encode(e)) for e in examples])
        _archive_to(settings, root, options)
        # Retention takes the first 1,000 examples from Kafka.
        topic = settings.topic_prefix + TOPIC
        for done in admin.delete_records([TopicPartition(topic, CTR_PARTITION, 1000)]).values():
            done.result(timeout=30)

        def replay(*args: str) -> Any:
            return run_command(
                worker_environment(settings, **env), "replay", "model", "ctr",
                "--source", "archive", "--root", root, "--s3-endpoint-url", s3_endpoint, *args,
            )  # fmt: skip

        rebuilt = replay("--shadow", "froms3")
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert f"[{CTR_PARTITION}] offsets 0..1500 (1,500 records" in rebuilt.stdout
        (snapshot,) = _snapshots(settings, registry, "ctr@froms3")
        assert snapshot["payload"] == _river(examples), "byte-identical to River in-process"

        # An object cut short after its header, as a partial copy leaves it: Avro reads
        # it as a file of no records.
        files = list_archive(root, topic, options)
        damaged = next(f for f in files if f.partition == CTR_PARTITION and f.first_offset)
        key = f"{root}/{damaged.path}"
        bucket = s3fs.S3FileSystem(**options)
        whole = bucket.cat_file(key)
        for cut in (whole[: whole.index(whole[-16:]) + 16], whole[: len(whole) // 2]):
            bucket.pipe_file(key, cut)
            refused = replay("--shadow", "damaged")
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert "Traceback" not in refused.stderr, refused.stderr
            last = refused.stderr.strip().splitlines()[-1]
            assert last.startswith("streamlearn: error: archive file "), last
            assert damaged.name in last, last
            assert S3_KEY["AWS_SECRET_ACCESS_KEY"] not in refused.stdout + refused.stderr
        assert not _snapshots(settings, registry, "ctr@damaged")

        # A shadow replay that meets the damaged object has copied records before it:
        # the line says what it left and how to delete it (before: the error alone, and
        # `replay drop` then called the namespace perhaps another deployment's).
        copied = run_command(
            worker_environment(settings, **env), "replay", "agents", "--only", "learner",
            "--into", "dmg.", "--source", "archive", "--root", root,
            "--s3-endpoint-url", s3_endpoint,
        )  # fmt: skip
        assert copied.returncode == 1, copied.stdout + copied.stderr
        last = copied.stderr.strip().splitlines()[-1]
        assert last.startswith("streamlearn: error: archive file "), last
        assert damaged.name in last, last
        assert "streamlearn replay drop --into dmg. --force" in last, last


def test_a_key_the_server_refuses_is_one_line_saying_so(
    system_settings: Settings, tmp_path: Path
) -> None:
    """moto with its authentication on knows no key: the bucket check's HEAD answers a
    bare 403 (before: `S3: ... HeadBucket operation: Forbidden`, and nothing to check)."""
    port = free_port()
    with (tmp_path / "moto.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wrong = {**S3_KEY, "AWS_SECRET_ACCESS_KEY": "wrong-secret-0d6f", "AWS_REGION": "us-east-1"}
        env = worker_environment(system_settings.model_copy(update={"data_dir": tmp_path}), **wrong)
        endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            answer = run_command(
                env, "archive", "ls", "--root", "s3://archive-bucket/x",
                "--s3-endpoint-url", endpoint,
            )  # fmt: skip
            if "Could not connect" not in answer.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # moto is starting
        assert answer.returncode == 1, answer.stdout + answer.stderr
        last = answer.stderr.strip().splitlines()[-1]
        assert "(403)" in last, last
        assert "the server refused this key: check AWS_ACCESS_KEY_ID" in last, last
        assert "wrong-secret-0d6f" not in answer.stdout + answer.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
