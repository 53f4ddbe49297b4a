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
from streamlearn.simulate.learning_lab import learning_settings
from streamlearn.topology.catalogue import TopicCatalogue
from tests.unit.test_learning import examples

GATE = {"ctr": {"margin": 0.0, "window": 200}}


def test_a_held_back_version_is_keyed_apart_and_a_resumed_learner_goes_on_from_it() -> None:
    settings = learning_settings(models=["ctr"], model_promotion=GATE)
    catalogue = TopicCatalogue.from_settings(settings)
    registry = InMemoryRegistry()
    cluster = LocalCluster(catalogue, registry, partitions=1)
    serde = catalogue.topic("training.examples").serde(registry)
    records = examples(3400, seed=5)
    # A burst of wrong labels (all positive) makes the trainee over-confident; the honest
    # examples after it judge it worse than the promoted version (as in test_learning).
    records[2000:2800] = [{**r, "label": 1.0} for r in records[2000:2800]]

    def learn(chunk: list[dict[str, Any]], worker: LocalWorker) -> None:
        for record in chunk:
            key = record["request_id"].encode()
            cluster.produce("training.examples", key, serde.encode(record), partition=0)
        worker.run(100)
        worker.now_ms += 60_000
        worker.tick()

    def start() -> LocalWorker:
        metrics = AgentMetrics()
        worker = LocalWorker(cluster, make_learner(cluster.environment(settings, metrics)),
                             now_ms=1_000, metrics=metrics)  # fmt: skip
        worker.assign([0])
        return worker

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
    # A learner started anew resumes from v2, the newest, and publishes v3 after it.
    second = start()
    learn(records[3000:], second)
    newest = cluster.decoded("model.state")[-1]
    assert (newest["version"], newest["parent_version"]) == (3, 2)
    assert newest["trained_examples"] == 3400
