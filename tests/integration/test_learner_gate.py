"""A learner with a promotion gate, run as `streamlearn agents run --only learner` on the
broker: a version it holds back goes under ``ctr~newest``, a restarted learner resumes
from it and still judges against the promoted version, and the next promotion deletes
``ctr~newest`` (a tombstone through the agents' own output path). A worker started
afterwards serves the promoted version."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from streamlearn.models.gate_state import opened
from streamlearn.replay.verify import verify_published
from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.settings import Settings
from streamlearn.settings_values import PromotionGate
from tests.integration.test_feedback_loop import _produce, _read_keyed, _wait_for, start_learner
from tests.serving_support import start_worker
from tests.support import click_examples, committed_to_end

KEY = "integration-test-signing-key"
EVERY = 1000
"""Examples per snapshot. Each chunk produced is EVERY examples and is consumed before the
next is sent, so every version is cut after the same examples whatever the batching."""


@pytest.fixture
def settings(system_settings: Settings, tmp_path: Path) -> Settings:
    return system_settings.model_copy(
        update={"data_dir": tmp_path, "model_signing_key": SecretStr(KEY), "models": ["ctr"]}
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


def _state(settings: Settings, serde: AvroSerde) -> list[tuple[str, dict[str, Any] | None]]:
    """Every record of model.state now, as (key, snapshot or None for a tombstone)."""
    records = _read_keyed(settings, "model.state", serde)
    return [((key or b"").decode(), snapshot) for _, _, key, snapshot in records]


def _published(
    records: list[tuple[str, dict[str, Any] | None]],
) -> list[tuple[str, int, int | None, float] | tuple[str, None]]:
    """(key, version, parent, promoted) per snapshot and (key, None) per tombstone."""
    return [
        (key, None)
        if s is None
        else (key, s["version"], s["parent_version"], s["metrics"]["promoted"])
        for key, s in records
    ]


async def test_a_gated_learner_keys_held_back_versions_apart_and_deletes_them_on_promotion(
    settings: Settings, registry: RegistryClient
) -> None:
    prefix = settings.topic_prefix
    examples_serde = AvroSerde.for_topic(registry, prefix + "training.examples", "TrainingExample")
    state_serde = AvroSerde.for_topic(registry, prefix + "model.state", "ModelSnapshot")
    examples = click_examples(3 * EVERY, seed=3)
    # Wrong labels (every one a click) make the trainee over-confident: judged on the
    # honest examples after them, it is worse than v1 and held back. With this seed the
    # gate (margin 0, window 200) holds v2 back and promotes v3 (as an in-process
    # OnlineLearner over the same examples decides).
    examples[EVERY : EVERY + 800] = [{**e, "label": 1.0} for e in examples[EVERY : EVERY + 800]]
    # One key: one partition, so the examples are learned in the order produced.
    records = [(b"ctr", examples_serde.encode(e)) for e in examples]

    def learner(log: str) -> subprocess.Popen[bytes]:
        return start_learner(
            settings,
            log,
            STREAMLEARN_MODEL_SIGNING_KEY=KEY,
            STREAMLEARN_MODELS=json.dumps(["ctr"]),
            STREAMLEARN_MODEL_PROMOTION=json.dumps({"ctr": {"margin": 0.0, "window": 200}}),
            STREAMLEARN_SNAPSHOT_EVERY_EXAMPLES=str(EVERY),
        )

    def stop(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "SIGTERM stops the learner cleanly"

    def published() -> list[Any]:
        return _published(_state(settings, state_serde))

    def newest_version() -> int:
        return max((s["version"] for _, s in _state(settings, state_serde) if s), default=0)

    def learn_chunk(chunk: int) -> None:
        """Version chunk + 1 cut from the chunk's examples, and its offsets committed: what
        the learner writes with a version (a tombstone) is on the topic before then."""
        _produce(settings, "training.examples", records[chunk * EVERY : (chunk + 1) * EVERY])
        _wait_for(lambda: newest_version() > chunk, 120, f"version {chunk + 1}")
        _wait_for(lambda: committed_to_end(settings, "training.examples"), 60, "offsets")

    first = learner("learner-1.log")
    try:
        learn_chunk(0)
        learn_chunk(1)
    finally:
        stop(first)
    assert published() == [("ctr", 1, None, 1.0), ("ctr~newest", 2, 1, 0.0)]
    # v2 carries the gate's window (200 pairs of held-out losses), sealed under the key,
    # so the learner below goes on from it (tests/unit/test_learning_gate_resume.py).
    held = dict(_state(settings, state_serde))["ctr~newest"]
    assert held is not None
    state = opened(held, KEY)
    assert state is not None
    assert len(base64.b64decode(state["losses"])) == 200 * 16

    # A new learner resumes from v2, found under ctr~newest, and goes on judging against
    # v1 (the version workers serve). It promotes v3, and so deletes ctr~newest (it knows
    # from model.state that v2 is there), or v2 would stay on the compacted topic for good.
    second = learner("learner-2.log")
    try:
        learn_chunk(2)
    finally:
        stop(second)
    log = (settings.data_dir / "learner-2.log").read_text()
    # It says what it took back of the gate: v2's window (it goes on from there).
    assert (
        "learner ctr resumed from version 2, with the gate's window of 200 held-out losses"
    ) in log, log[-2000:]
    assert published() == [
        ("ctr", 1, None, 1.0),
        ("ctr~newest", 2, 1, 0.0),
        ("ctr", 3, 2, 1.0),
        ("ctr~newest", None),
    ]

    # Each version, and its verdict, is what the log gives: decided again from its
    # parent on the broker's examples (v3's by a learner that resumed from v2 live).
    gated = settings.model_copy(
        update={"model_promotion": {"ctr": PromotionGate(margin=0.0, window=200)}}
    )
    verification = verify_published(gated, registry, "ctr", None, every=True)
    said = [(v.version, v.identical, v.detail.split("; gate: ")[1]) for v in verification.verdicts]
    assert [(v, same, text.split(" (")[0]) for v, same, text in said] == [
        (1, True, "promoted as published"),
        (2, True, "held back"),
        (3, True, "promoted"),
    ], said
    assert all(text.endswith(" as published") for _, _, text in said), said

    # A worker started now knows v3 alone: promoted, and the newest (the tombstone is
    # skipped, not an error).
    worker = await start_worker(settings, registry)
    try:
        store = worker.serving.store
        await worker.wait(lambda: store.version("ctr") == 3, timeout_s=60)
        assert store.newest_version("ctr") == 3
        status, answer = await worker.predict({"instances": [{"user_id": "u", "features": {}}]})
        assert status == 200, answer
        assert answer["predictions"][0]["model_version"] == 3
    finally:
        await worker.close()
