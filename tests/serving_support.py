"""Helpers of the prediction-worker tests: trained, signed snapshots and sample requests."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from streamlearn.kafka_local import free_port
from streamlearn.models import SPECS, ModelSpec, build_snapshot, load_model
from streamlearn.models.checks import training_stream
from streamlearn.models.snapshot import LoadedModel
from streamlearn.models.synthetic import ClickWorld
from streamlearn.serde import RegistryClient
from streamlearn.serving import SERVING, create_serving_app
from streamlearn.serving.shortcut import ServingRunner
from streamlearn.settings import Settings

KEY = "serving-test-key"


class WorkerTestServer(TestServer):
    """aiohttp's ``TestServer`` running the app as ``streamlearn serve`` does: with a
    :class:`ServingRunner`, whose server answers predictions before the router."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return ServingRunner(self.app, **kwargs)


@functools.cache
def _payload(spec_name: str, n: int) -> bytes:
    from streamlearn.models import safe_pickle

    spec = SPECS[spec_name]
    model = spec.new_model()
    for x, label in training_stream(spec, n):
        spec.learn(model, x, label)
    return safe_pickle.dumps(model)


def snapshot(
    version: int,
    *,
    spec_name: str = "ctr",
    model_name: str | None = None,
    created: datetime | None = None,
    key: str = KEY,
    n: int = 300,
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """A signed ``ModelSnapshot`` record of a trained ``spec_name`` model (described as
    ``spec`` when given: a configured variant of the shipped spec)."""
    return build_snapshot(
        spec or SPECS[spec_name],
        None,
        version=version,
        parent_version=version - 1 or None,
        trained_examples=n,
        offsets={("training.examples", 0): n},
        metrics={"auc": 0.7},
        created=created or datetime.now(UTC),
        key=key,
        model_name=model_name,
        payload=_payload(spec_name, n),
    )


def loaded(version: int, **options: Any) -> LoadedModel:
    return load_model(snapshot(version, **options), KEY)


def instances(n: int, seed: int = 0, users: str = "u") -> list[dict[str, Any]]:
    """``n`` realistic predict instances (features and context of the synthetic world)."""
    world = ClickWorld(seed)
    return [
        {"user_id": f"{users}-{i}", "features": r.features, "context": r.context}
        for i, r in enumerate(world.requests(n))
    ]


class Worker:
    def __init__(self, app: web.Application, runner: web.AppRunner, url: str) -> None:
        self.app, self.runner, self.url = app, runner, url
        self.session = aiohttp.ClientSession()

    @property
    def serving(self) -> Any:
        return self.app[SERVING]

    async def predict(self, body: Any, model: str = "ctr") -> tuple[int, Any]:
        async with self.session.post(f"{self.url}/v1/models/{model}:predict", json=body) as r:
            return r.status, await r.json()

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.url + path) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def wait(self, condition: Callable[[], bool], timeout_s: float = 30) -> float:
        began = time.monotonic()
        while not condition():
            assert time.monotonic() - began < timeout_s, "condition not reached in time"
            await asyncio.sleep(0.01)
        return time.monotonic() - began

    async def close(self) -> None:
        await self.session.close()
        await self.runner.cleanup()


async def start_worker(
    settings: Settings, registry: RegistryClient | None = None, **app_options: Any
) -> Worker:
    app = create_serving_app(settings, registry, **app_options)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return Worker(app, runner, f"http://127.0.0.1:{port}")
