"""The baselines ``bench/predict.py`` loads beside the worker, each run as its own process:
a bare aiohttp handler returning a constant, and a minimal real handler (orjson + model)."""

from __future__ import annotations

from streamlearn.models import SPECS
from streamlearn.models.checks import training_stream


def bare_server(port: int, uvloop: bool = False) -> None:
    """The baseline: an aiohttp handler that reads the body and returns a constant (on
    asyncio's event loop, or on uvloop's: the worker runs on uvloop when it is installed)."""
    import asyncio

    from aiohttp import web

    body = b'{"predictions":[{"score":0.5}]}'

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    loop = None
    if uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()
    web.run_app(
        app, host="127.0.0.1", port=port, print=None, access_log=None,
        loop=loop or asyncio.new_event_loop(),
    )  # fmt: skip


def minimal_server(port: int) -> None:
    """The least a real predict handler does: parse the body with orjson, score the first
    instance with the same model (``model_input`` + River), render the score with orjson, on
    the worker's event loop. What the worker costs beyond this is routing, rules,
    validation, metrics and telemetry."""
    import asyncio

    import orjson
    from aiohttp import web

    from streamlearn.models.features import model_input
    from streamlearn.serving.runner import new_event_loop

    spec = SPECS["ctr"]
    model = spec.new_model()
    for x, label in training_stream(spec, 5000):
        spec.learn(model, x, label)

    async def handler(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        instance = body["instances"][0] if "instances" in body else body
        score = spec.predict(model, model_input(instance["features"], instance.get("context")))
        return web.Response(
            body=orjson.dumps({"predictions": [{"score": score}]}), content_type="application/json"
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", handler)
    loop: asyncio.AbstractEventLoop = new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)
