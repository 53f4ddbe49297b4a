"""A prediction worker on the broker when the learner's promotion gate holds a version back:
it keeps serving the promoted version, and an experiment arm routed to ``ctr~newest`` gets
the newest one (its predictions recorded as ``ctr``'s, so they train ``ctr``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from streamlearn.serde import AvroSerde, RegistryClient
from streamlearn.serving.experiment_topic import publish_experiment
from streamlearn.serving.experiments import Arm, Experiment
from streamlearn.settings import Settings
from tests.integration.test_serving import publish
from tests.serving_support import KEY, start_worker
from tests.support import read_values
from tests.unit.test_serving_promotion import gated


@pytest.fixture
def settings(system_settings: Settings) -> Settings:
    return system_settings.model_copy(
        update={"model_signing_key": SecretStr(KEY), "models": ["ctr"]}
    )


@pytest.fixture
def registry(settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(settings.schema_registry_url) as client:
        yield client


async def test_the_promoted_version_serves_and_a_newest_arm_gets_the_newest(
    settings: Settings, registry: RegistryClient
) -> None:
    experiment = Experiment(
        name="gate-check",
        salt="s",
        arms=(Arm("promoted", "ctr", 1.0), Arm("newest", "ctr~newest", 1.0)),
    )
    await asyncio.to_thread(publish, settings, registry, gated(1, True))
    await asyncio.to_thread(publish_experiment, settings, registry, experiment)
    worker = await start_worker(settings, registry)
    try:
        store = worker.serving.store
        await worker.wait(
            lambda: store.version("ctr") == 1 and worker.serving.book.covering("ctr") is not None
        )
        await asyncio.to_thread(publish, settings, registry, gated(2, False))
        await worker.wait(lambda: store.newest_version("ctr") == 2)
        users = [f"user-{i}" for i in range(200)]
        body = {"instances": [{"user_id": u, "features": {"price": 3.5}} for u in users]}
        status, answer = await worker.predict(body)
        assert status == 200, answer
        got = {(p["arm"], p["model_name"], p["model_version"]) for p in answer["predictions"]}
        assert got == {("promoted", "ctr", 1), ("newest", "ctr", 2)}
        assert all(p["arm"] == experiment.assign(p["user_id"]).name for p in answer["predictions"])
        # Without an experiment's routing the model's endpoint would serve v1 too.
        assert store.get("ctr").loaded.version == 1
        # The telemetry records which version answered under the model's own name.
        topic = settings.topic_prefix + "telemetry.predictions"
        serde = AvroSerde.for_topic(registry, topic, "PredictionServed")
        logged = [
            serde.decode(v) for v in await read_values(settings.kafka_bootstrap, topic, 200, 20)
        ]
        assert {(r["arm"], r["model_name"], r["model_version"]) for r in logged} == got
        # A promoted version then serves everybody.
        await asyncio.to_thread(publish, settings, registry, gated(3, True))
        await worker.wait(lambda: store.version("ctr") == 3)
        _, answer = await worker.predict(body)
        assert {p["model_version"] for p in answer["predictions"]} == {3}
    finally:
        await worker.close()
