"""A prediction worker on the broker when the learner's promotion gate holds a version back:
it keeps serving the promoted version, and an experiment arm routed to ``ctr~newest`` gets
the newest one (its predictions recorded as ``ctr``'s, so they train ``ctr``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from pydantic import SecretStr

from streamlearn.models.snapshot import state_key
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


def _compact_soon(settings: Settings) -> None:
    """model.state's segments roll after 100 ms and are compacted at the cleaner's next
    pass (every 15 s), instead of after an hour."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        settings.topic_prefix + "model.state",
        incremental_configs=[
            ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
            for name, value in {
                "segment.ms": "100",
                "min.compaction.lag.ms": "0",
                "min.cleanable.dirty.ratio": "0.01",
            }.items()
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


async def test_after_compaction_a_new_worker_still_serves_the_promoted_version(
    settings: Settings, registry: RegistryClient
) -> None:
    """model.state is compacted by key. The learner publishes a version its gate held back
    under ``ctr~newest`` (``state_key``), so compaction keeps the promoted one under
    ``ctr``: a worker started after it serves v1, not v3, which the gate judged worse.
    Before, every version was keyed ``ctr`` and such a worker served v3 to everybody."""
    await asyncio.to_thread(_compact_soon, settings)
    published = [gated(1, True), gated(2, False), gated(3, False)]
    for record in published:
        await asyncio.to_thread(publish, settings, registry, record, state_key(record))
    await asyncio.sleep(0.5)  # past segment.ms: the next record rolls the segment
    await asyncio.to_thread(publish, settings, registry, gated(1, None), "compaction-trigger")
    topic = settings.topic_prefix + "model.state"
    serde = AvroSerde.for_topic(registry, topic, "ModelSnapshot")

    async def versions() -> list[int]:
        values = await read_values(settings.kafka_bootstrap, topic, 1, 10, settle_s=2)
        return [serde.decode(v)["version"] for v in values]

    # The broker's one cleaner thread may have other topics' logs to compact first.
    async with asyncio.timeout(180):
        while 2 in await versions():  # v2, replaced under ctr~newest by v3, is gone
            await asyncio.sleep(2)
    assert sorted(await versions()) == [1, 1, 3]  # v1 (ctr), v3 (ctr~newest), the trigger
    worker = await start_worker(settings, registry)
    try:
        store = worker.serving.store
        await worker.wait(lambda: store.newest_version("ctr") == 3 and store.version("ctr") > 0)
        assert store.version("ctr") == 1
        status, answer = await worker.predict({"instances": [{"user_id": "u", "features": {}}]})
        assert status == 200, answer
        assert answer["predictions"][0]["model_version"] == 1
    finally:
        await worker.close()
