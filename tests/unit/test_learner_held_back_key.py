"""A version the promotion gate held back is published under ``<model>~newest``, the promoted
ones under the model's name: ``model.state`` is compacted by key, so a held-back version no
longer replaces the promoted one there. Before, both went under the model's name; once the
topic was compacted, a worker started after a held-back version knew no promoted one and
served the held-back version (judged worse) to everybody. A learner resumes from the newest
version under either key."""

from __future__ import annotations

from typing import Any

from streamlearn.agents.learner import make_learner
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.serde import InMemoryRegistry
from streamlearn.settings import Settings
from streamlearn.simulate.learning_lab import learning_settings
from streamlearn.topology.catalogue import TopicCatalogue
from tests.unit.test_learning import T0, _gated, examples, positioned

GATE = {"ctr": {"margin": 0.0, "window": 200}}


class _Model:
    """``model.state`` and ``training.examples`` of one gated ``ctr`` on an in-memory
    cluster (one partition), with examples of seed 5 whose 2,000-2,799 are all labelled
    positive: that burst makes the trainee over-confident, and the honest examples after
    it judge it worse than the promoted version (as in test_learning)."""

    def __init__(self, settings: Settings, count: int) -> None:
        catalogue = TopicCatalogue.from_settings(settings)
        registry = InMemoryRegistry()
        self.cluster = LocalCluster(catalogue, registry, partitions=1)
        self.serde = catalogue.topic("training.examples").serde(registry)
        self.records = examples(count, seed=5)
        self.records[2000:2800] = [{**r, "label": 1.0} for r in self.records[2000:2800]]

    def start(self, settings: Settings) -> LocalWorker:
        """A learner agent with ``settings``, assigned the partition."""
        metrics = AgentMetrics()
        environment = self.cluster.environment(settings, metrics)
        worker = LocalWorker(self.cluster, make_learner(environment), now_ms=1_000,
                             metrics=metrics)  # fmt: skip
        worker.assign([0])
        return worker

    def learn(self, chunk: list[dict[str, Any]], worker: LocalWorker) -> None:
        """Produce ``chunk``, let ``worker`` read it, then a minute later tick it."""
        for record in chunk:
            key = record["request_id"].encode()
            self.cluster.produce("training.examples", key, self.serde.encode(record), partition=0)
        worker.run(100)
        worker.now_ms += 60_000
        worker.tick()

    def state(self) -> dict[bytes, dict[str, Any] | None]:
        """``model.state`` compacted: the last record of each key (None: a tombstone)."""
        messages = self.cluster.messages("model.state")
        decoded = self.cluster.decoded("model.state")
        return {m.key: s for m, s in zip(messages, decoded, strict=True)}


def test_a_held_back_version_is_keyed_apart_and_a_resumed_learner_goes_on_from_it() -> None:
    settings = learning_settings(models=["ctr"], model_promotion=GATE)
    model = _Model(settings, 6000)
    cluster, records, learn = model.cluster, model.records, model.learn

    def start() -> LocalWorker:
        return model.start(settings)

    first = start()
    learn(records[:2000], first)
    learn(records[2000:3000], first)
    published = [
        (m.key, snapshot["version"], snapshot["metrics"]["promoted"])
        for m, snapshot in zip(
            cluster.messages("model.state"), cluster.decoded("model.state"), strict=True
        )
    ]
    assert published == [(b"ctr", 1, 1.0), (b"ctr~newest", 2, 0.0)]
    # A learner started anew resumes from v2, the newest, and publishes v3 after it. Its
    # gate judges against v1, the version workers serve, not against v2, which the gate
    # held back (before, a resumed learner took the version it resumed from as promoted).
    second = start()
    second.run(100)
    gate = second.step.learners["ctr"].gate
    assert gate is not None
    assert gate.promoted_examples == 2000  # v1's, not v2's 3000
    learn(records[3000:3400], second)
    v3 = cluster.decoded("model.state")[-1]
    assert (v3["version"], v3["parent_version"], v3["trained_examples"]) == (3, 2, 3400)
    # Honest examples until a version is promoted: then the held-back key is deleted (a
    # tombstone), or its last version would stay on the compacted topic for good.
    for start_at in range(3400, 6000, 400):
        learn(records[start_at : start_at + 400], second)
        if cluster.decoded("model.state")[-1]["metrics"]["promoted"] == 1.0:
            break
    *_, promoted, tombstone = cluster.messages("model.state")
    assert promoted.key == b"ctr"
    assert (tombstone.key, tombstone.value) == (b"ctr~newest", None)
    compacted = {m.key: m.value for m in cluster.messages("model.state")}
    assert compacted == {b"ctr": promoted.value, b"ctr~newest": None}


def test_a_promoted_version_that_does_not_load_leaves_the_resumed_one_to_judge_against() -> None:
    """A promoted version another spec made (before an upgrade) or that does not verify
    does not stop the learner resuming: it judges against the version it resumed from."""
    stream = positioned(examples(600, seed=5))
    learner = _gated()
    learner.learn_many(stream[:300])
    first = learner.snapshot(T0)
    learner.learn_many(stream[300:])
    second = learner.snapshot(T0)
    tampered = {**first, "payload": bytes(first["payload"]) + b"x"}
    resumed = _gated()
    resumed.resume(second, tampered)
    assert resumed.version == second["version"]
    assert resumed.gate is not None
    assert resumed.gate.promoted_examples == 600  # the resumed version's
    again = _gated()
    again.resume(second, first)
    assert again.gate is not None
    assert again.gate.promoted_examples == 300  # the promoted version's


def test_a_held_back_version_published_again_with_a_new_key_stays_held_back() -> None:
    """After a key rotation the learner publishes the version it resumed from again, signed
    with the new key, promoted: for a version the gate had held back, that made workers
    serve it to everybody."""
    from dataclasses import replace

    from streamlearn.models import SPECS
    from streamlearn.models.online import OnlineLearner
    from tests.unit.test_models_keyring import NEW, NOW, OLD, _keyring

    spec = replace(SPECS["ctr"], promotion_margin=0.0, promotion_window=200)
    records = examples(3000, seed=5)
    records[2000:2800] = [{**r, "label": 1.0} for r in records[2000:2800]]
    before = OnlineLearner(spec, signing_key=OLD, signing_key_id="k-old")
    before.learn_many(positioned(records[:2000]))
    promoted = before.snapshot(T0)
    before.learn_many(positioned(records)[2000:])
    held = before.snapshot(T0)
    assert held["metrics"]["promoted"] == 0.0
    learner = OnlineLearner(spec, signing_key=NEW, signing_key_id="k-new",
                            verification=_keyring([NOW]))  # fmt: skip
    learner.resume(held, promoted)
    again = learner.snapshot(T0, 0.0)
    assert again is not None
    assert (again["version"], again["signing_key_id"]) == (3, "k-new")
    assert again["metrics"]["promoted"] == 0.0
    assert learner.gate is not None
    assert learner.gate.promoted_examples == 2000  # still judged against v1


def test_after_a_rotation_the_promoted_version_behind_a_held_back_one_is_signed_again() -> None:
    """A key rotation while the newest version is held back: the learner resumed from the
    held-back version and published it again with the new key, but the promoted version
    workers serve (under the model's own key) kept the old signature. Once the grace
    ended, a worker that started refused it (``retired_key``) and served the fallback to
    everybody. The learner now publishes the promoted version again as it was (same
    version, same payload), signed with the new key."""
    from datetime import UTC, datetime, timedelta

    from streamlearn.models import verify_snapshot
    from streamlearn.models.keyring import Keyring

    old = learning_settings(models=["ctr"], model_promotion=GATE, model_signing_key_id="k-old")
    new = learning_settings(
        models=["ctr"],
        model_promotion=GATE,
        model_signing_key="a-new-key-of-the-rotation-0123456789",
        model_signing_key_id="k-new",
        model_previous_signing_key=old.model_signing_key,
        model_previous_signing_key_id="k-old",
        model_previous_signing_key_until=datetime.now(UTC) + timedelta(hours=1),
    )
    model = _Model(old, 3000)
    first = model.start(old)
    model.learn(model.records[:2000], first)
    model.learn(model.records[2000:], first)
    before = model.state()
    assert {k: s and s["version"] for k, s in before.items()} == {b"ctr": 1, b"ctr~newest": 2}

    rotated = model.start(new)
    rotated.run(100)
    rotated.tick()
    compacted = model.state()
    # The grace has ended: only the new key verifies.
    after_grace = Keyring.from_settings(new.model_copy(update={"model_previous_signing_key": None}))
    promoted, held_back, promoted_before = (
        compacted[b"ctr"],
        compacted[b"ctr~newest"],
        before[b"ctr"],
    )
    assert promoted is not None
    assert held_back is not None
    assert promoted_before is not None
    for snapshot in (promoted, held_back):
        verify_snapshot(snapshot, after_grace)
        assert snapshot["signing_key_id"] == "k-new"
    assert promoted["version"] == 1  # the same version, payload and figures as before
    assert promoted["payload"] == promoted_before["payload"]
    assert promoted["metrics"] == promoted_before["metrics"]
    assert (held_back["version"], held_back["metrics"]["promoted"]) == (3, 0.0)
    # Signed again once, not at every tick.
    rotated.now_ms += 1_000
    rotated.tick()
    assert sum(m.key == b"ctr" for m in model.cluster.messages("model.state")) == 2
    # A learner started again within the grace resumes from what the new key signed: the
    # later record of a version is the one compaction keeps, and the one the view reads.
    again = model.start(new)
    again.run(100)
    again.tick()
    assert sum(m.key == b"ctr" for m in model.cluster.messages("model.state")) == 2
