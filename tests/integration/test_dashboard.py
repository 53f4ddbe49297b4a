"""The dashboard against the real broker and schema registry, looked at in a real browser
(Debian's Chromium, driven by Playwright): real Avro records on the topics it follows
appear on the page, charts draw, a drifted report is highlighted, an alert produced while
the page is open arrives over server-sent events within seconds, and the page runs under
its CSP without a single violation or console error.

``STREAMLEARN_DASHBOARD_SCREENSHOT=path.png`` saves a screenshot of the page (the
README's).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from confluent_kafka import Producer
from faust.types import TP
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Request,
)
from prometheus_client import CollectorRegistry, Counter, generate_latest

from streamlearn.dashboard import create_dashboard_app, serve_dashboard
from streamlearn.dashboard.security import CONTENT_SECURITY_POLICY
from streamlearn.kafka_clients import producer_config
from streamlearn.kafka_local import free_port
from streamlearn.runtime.lag import PartitionLag
from streamlearn.serde import RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.namespace import Namespace
from tests.integration.browser.support import chromium
from tests.support import fuzz_from_document, serve_app

DRIFTED_KEY = "feature/ctr/logistic//price"
STEADY_KEY = "feature/ctr/logistic//device"
CALIBRATION_KEY = "calibration/ctr/logistic//score"
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""


@pytest.fixture
def registry(system_settings: Settings) -> Iterator[RegistryClient]:
    with RegistryClient(system_settings.schema_registry_url) as client:
        yield client


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


def produce(
    settings: Settings, registry: RegistryClient, topic: str, records: list[tuple[str, Any]]
) -> None:
    """Real Avro records of ``topic`` (declared name), confirmed by Kafka."""
    entry = TopicCatalogue.from_settings(settings).topic(topic)
    serde = entry.serde(registry)
    producer = Producer(producer_config(settings, **{"linger.ms": 1}))
    for key, value in records:
        producer.produce(entry.name, key=key.encode(), value=serde.encode(value))
    assert producer.flush(30) == 0


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def snapshot(version: int, created: datetime) -> dict[str, Any]:
    """A snapshot whose payload is no model at all: the dashboard reads metadata only."""
    return {
        "model_name": "ctr",
        "version": version,
        "parent_version": version - 1 or None,
        "created_ts": created,
        "trained_examples": 500 * version,
        "offsets": [{"topic": "training.examples", "partition": 0, "offset": 500 * version}],
        "metrics": {"auc": 0.6 + 0.05 * version, "log_loss": 0.6 - 0.03 * version},
        "libraries": {"river": "test"},
        "spec": "logistic",
        "content_type": "application/x-river-pickle; protocol=5",
        "payload": b"this is not a pickle, and nothing may try to load it",
        "payload_sha256": "0" * 64,
        "signing_key_id": None,
        "signature": "0" * 64,
        "manifest": None,
    }


def metrics(source: str, arm: str, end: datetime, count: int, **values: float) -> dict[str, Any]:
    return {
        "model_name": "ctr",
        "model_version": 3,
        "arm": arm,
        "source": source,
        "window_start_ts": end - timedelta(seconds=10),
        "window_end_ts": end,
        "example_count": count,
        "metrics": values,
        "emitted_ts": end,
    }


def drift(key: str, kind: str, drifted: bool, **fields: Any) -> dict[str, Any]:
    return {
        "report_key": key,
        "scope": key.split("/")[0],
        "model_name": "ctr",
        "model_version": 3,
        "arm": "logistic",
        "producer": None,
        "feature": key.rsplit("/", 1)[-1],
        "kind": kind,
        "thresholds": {"psi": 0.2, "jensen_shannon": 0.1},
        "drifted": drifted,
        "topic": "telemetry.predictions",
        "partition": 0,
        "first_offset": 0,
        "last_offset": 199,
        "record_count": 200,
        "window_start_ts": ago(60),
        "window_end_ts": ago(1),
        **fields,
    }


def alert(key: str, message: str, severity: str = "warning") -> dict[str, Any]:
    return {
        "alert_key": key,
        "kind": "drift",
        "severity": severity,
        "message": message,
        "model_name": "ctr",
        "model_version": 3,
        "value": 0.9,
        "threshold": 0.2,
        "labels": {"feature": "price"},
        "source": "monitor",
        "raised_ts": datetime.now(UTC),
    }


def event(n: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "page_view",
        "user_id": f"user-{n % 7}",
        "client_ts": ago(5),
        "received_ts": ago(5),
        "app_version": "web-1",
    }


def produce_system(settings: Settings, registry: RegistryClient) -> None:
    """What a running system would have written by now."""
    produce(
        settings,
        registry,
        "model.state",
        [("ctr", snapshot(v, ago(40 - 10 * v))) for v in (1, 2, 3)],
    )
    produce(settings, registry, "model.metrics", [
        # From a run a quarter of an hour before this one: its line is not joined to this
        # run's (a break in the chart).
        ("ctr", metrics("learner", "logistic", ago(900), 500, auc=0.9, log_loss=0.5)),
        *(("ctr", metrics("learner", arm, ago(30 - 10 * i), 500, auc=0.7 + 0.02 * i,
                          served_auc=0.68 + 0.02 * i, log_loss=0.55)) for i in range(3)
          for arm in ("logistic", "tree")),
        *(("ctr", metrics("label-join", arm, ago(25 - 5 * i), 100, mean_residual=0.01,
                          rmse_residual=0.4, mean_score=0.2 + 0.1 * i, mean_label=0.22 + 0.1 * i))
          for i in range(4) for arm in ("logistic", "tree")),
    ])  # fmt: skip
    produce(settings, registry, "monitoring.drift", [
        (DRIFTED_KEY, drift(DRIFTED_KEY, "numeric", True, bins=["0", "10", "20", "30", "40"],
                            reference_counts=[10.0, 40.0, 80.0, 40.0, 10.0],
                            current_counts=[90.0, 50.0, 20.0, 10.0, 10.0],
                            statistics={"psi": 0.9, "jensen_shannon": 0.3})),
        (STEADY_KEY, drift(STEADY_KEY, "categorical", False, bins=["mobile", "desktop", "other"],
                           reference_counts=[100.0, 80.0, 20.0], current_counts=[98.0, 82.0, 20.0],
                           statistics={"psi": 0.01, "jensen_shannon": 0.02})),
        (CALIBRATION_KEY, drift(CALIBRATION_KEY, "calibration", False, bins=["0.10", "0.50"],
                                reference_counts=[0.1, 0.5], current_counts=[0.12, 0.47],
                                statistics={"ece": 0.02}, thresholds={"ece": 0.05},
                                topic="training.examples")),
    ])  # fmt: skip
    produce(settings, registry, "monitoring.alerts", [("k1", alert("k1", "an alert from before"))])
    produce(
        settings, registry, "telemetry.events", [(f"user-{n % 7}", event(n)) for n in range(60)]
    )


def traffic(settings: Settings, registry: RegistryClient, seconds: float) -> None:
    """Telemetry at a rate that swings between about 20 and 120 events a second."""
    started = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - started) < seconds:
        count = int(10 + 8 * (1 + math.sin(elapsed)) ** 2)
        produce(settings, registry, "telemetry.events",
                [(f"user-{i % 7}", event(i)) for i in range(n, n + count)])  # fmt: skip
        n += count
        time.sleep(0.25)


async def metrics_endpoint() -> tuple[web.AppRunner, str, Counter]:
    """A part's Prometheus endpoint (a preprocess worker's bot counter, and its input
    partitions' positions and lag from the workers' own collector: 45 records waiting)."""
    prometheus = CollectorRegistry()
    events = Counter("streamlearn_preprocess_events", "", ["outcome"], registry=prometheus)

    class Consumer:
        def partition_lags(self) -> dict[TP, tuple[int, int]]:
            return {TP("telemetry.events", 0): (120, 40), TP("telemetry.events", 1): (99, 5)}

    lag = PartitionLag(Namespace(""))
    lag.refresh(Consumer())
    prometheus.register(lag)

    async def serve_metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(prometheus), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    runner, url = await serve_app(app)
    return runner, f"{url}/metrics", events


async def open_page(browser: Browser, url: str) -> tuple[Page, list[str]]:
    context = await browser.new_context(
        viewport={"width": 1440, "height": 1000}, color_scheme="light"
    )
    await context.add_init_script(CSP_WATCH)
    page = await context.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    def failed(request: Request) -> None:
        # The event stream is cut when the page closes; anything else failing is a fault.
        if not request.url.endswith("/api/events"):
            problems.append(f"request failed: {request.url}")

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("requestfailed", failed)
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    return page, problems


async def test_the_page_shows_the_system_live_in_a_browser(
    system_settings: Settings, registry: RegistryClient, browser: Browser
) -> None:
    settings = system_settings
    await asyncio.to_thread(produce_system, settings, registry)
    scrape_runner, scrape_url, bots = await metrics_endpoint()
    bots.labels(outcome="bot").inc(5)
    dead = f"http://127.0.0.1:{free_port()}/metrics"
    app = create_dashboard_app(settings, scrape=[f"preprocess={scrape_url}", f"learner={dead}"])
    stop = asyncio.Event()
    urls: list[str] = []
    server = asyncio.create_task(
        serve_dashboard(app, host="127.0.0.1", port=0, stop=stop, ready=urls.append)
    )
    try:
        async with asyncio.timeout(10):
            while not urls:
                await asyncio.sleep(0.02)
        page, problems = await open_page(browser, urls[0] + "/")
        # Everything produced before is on the page, and the rates have points.
        await page.wait_for_function(
            """() => {
              const points = (sel) => Number(document.querySelector(sel)?.dataset.points || 0);
              return points("#pipeline-chart") >= 2 && points("#counters-chart") >= 1
                && document.querySelectorAll(".drift-card").length === 3
                && points('#model-list [data-model="ctr"] .chart.quality') >= 3
                && document.querySelectorAll("#arms-table tbody tr").length === 2
                && document.querySelector("#alert-list li") !== null
                && /60 total/.test(document.querySelector("#pipeline-figures").textContent);
            }""",
            timeout=15_000,
        )
        bots.labels(outcome="bot").inc(3)

        # Charts: every section draws on canvases, with data.
        assert await page.locator("canvas").count() >= 10
        for chart in ("#pipeline-chart", "#counters-chart", "#alerts-chart"):
            assert await page.locator(f"{chart} canvas").count() >= 1, chart
            assert int(await page.get_attribute(chart, "data-points") or 0) > 0, chart
        model = page.locator('#model-list [data-model="ctr"]')
        for kind in ("quality", "errors", "reliability"):
            assert int(await model.locator(f".chart.{kind}").get_attribute("data-points") or 0) > 0
        # The earlier run's point stands apart: one break, and no line drawn across it.
        assert await model.locator(".chart.quality").get_attribute("data-breaks") == "1"
        assert await page.locator("#pipeline-chart").get_attribute("data-breaks") == "0"
        assert "v3" in await page.locator("#models-table").inner_text()
        arms = await page.locator("#arms-table").inner_text()
        assert "logistic" in arms
        assert "tree" in arms

        # Drift: the drifted report first, highlighted, its crossed statistics marked.
        cards = page.locator(".drift-card")
        assert await cards.first.get_attribute("data-key") == DRIFTED_KEY
        drifted = page.locator(f'.drift-card[data-key="{DRIFTED_KEY}"]')
        assert "drifted" in (await drifted.get_attribute("class") or "").split()
        assert await drifted.locator(".flag").is_visible()
        assert await drifted.locator("td.crossed").all_inner_texts() == ["0.3000", "0.9000"]
        assert await drifted.locator("canvas").count() == 2  # reference beside current
        steady = page.locator(f'.drift-card[data-key="{STEADY_KEY}"]')
        assert "drifted" not in (await steady.get_attribute("class") or "").split()
        assert not await steady.locator(".flag").is_visible()
        highlight = await drifted.evaluate("e => getComputedStyle(e).backgroundColor")
        assert highlight != await steady.evaluate("e => getComputedStyle(e).backgroundColor")
        calibration = page.locator(f'.drift-card[data-key="{CALIBRATION_KEY}"] .chart.calibration')
        assert int(await calibration.get_attribute("data-points") or 0) > 0

        # Processes from the scrape targets: one up, one down.
        processes = await page.locator("#processes-table").inner_text()
        assert "preprocess\tup" in processes
        assert "learner\tdown" in processes
        headers = await page.locator("#processes-table th").all_inner_texts()
        lag_cells = page.locator("#processes-table tr", has_text="preprocess").locator("td")
        assert await lag_cells.nth(headers.index("input lag")).inner_text() == "45"

        # An alert raised now reaches the open page within seconds (server-sent events).
        message = f"price drifted {uuid.uuid4().hex[:8]}"
        raised = time.monotonic()
        live = alert("k2", message, "critical")
        live["labels"] = {"feature": "price", "partition": "0"}
        await asyncio.to_thread(produce, settings, registry, "monitoring.alerts", [("k2", live)])
        await page.locator("#alert-list li.sev-critical", has_text=message).wait_for(timeout=5_000)
        assert time.monotonic() - raised < 5
        assert await page.locator("#alert-list li").first.get_attribute("data-key") == "k2"
        assert await page.get_attribute("#connection", "data-state") == "live"
        # The same condition alerted by another partition joins its entry, counted.
        again = dict(live, labels={"feature": "price", "partition": "1"})
        await asyncio.to_thread(produce, settings, registry, "monitoring.alerts", [("k2", again)])
        count = page.locator('#alert-list li[data-key="k2"] .count')
        await count.wait_for(timeout=5_000)
        assert await count.inner_text() == "\u00d72 (partitions 0, 1)"
        assert await page.locator('#alert-list li[data-key="k2"]').count() == 1

        assert await page.evaluate("window.__csp") == []
        assert problems == []
        screenshot = os.environ.get("STREAMLEARN_DASHBOARD_SCREENSHOT")
        if screenshot:
            # Some traffic first, so the rate charts have a shape.
            await asyncio.to_thread(traffic, settings, registry, 12.0)
            await page.screenshot(path=screenshot, full_page=True)
        await page.context.close()
    finally:
        stop.set()
        await server
        await scrape_runner.cleanup()


EVENT_STREAM = frozenset({"/api/events"})


def test_the_command_serves_until_sigterm(system_settings: Settings, tmp_path: Path) -> None:
    """``streamlearn dashboard`` as ``up`` would run it: ready file, health, answers as
    its OpenAPI document says (schemathesis), its stacks on SIGQUIT, clean stop."""
    settings = system_settings
    ready = tmp_path / "dashboard.url"
    env = {
        **os.environ,
        "STREAMLEARN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "STREAMLEARN_SCHEMA_REGISTRY_URL": settings.schema_registry_url,
        "STREAMLEARN_TOPIC_PREFIX": settings.topic_prefix,
    }
    # Its output to a file, not a pipe nobody reads until the end: a full pipe would block
    # the process on its next line (and its stacks, written from a signal handler).
    log_path = tmp_path / "dashboard.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlearn", "dashboard", "--port", "0",
             "--ready-file", str(ready), "--scrape", "http://127.0.0.1:9/metrics"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no ready file"
            time.sleep(0.05)
        url = ready.read_text().strip()
        health: dict[str, Any] = {}
        while len(health.get("topics", {})) < 4:
            assert time.monotonic() < deadline, health
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
                health = json.loads(response.read())
            time.sleep(0.1)
        assert health["missing"] == []
        with urllib.request.urlopen(f"{url}/", timeout=5) as response:
            assert "Content-Security-Policy" in response.headers
        # Every answer is one the dashboard's document declares, no 5xx (the event stream
        # never ends, so it is left to the browser test above).
        checked = fuzz_from_document(f"{url}/openapi.json", streaming_paths=EVENT_STREAM)
        assert {"GET /api/state", "GET /healthz", "GET /metrics", "GET /"} <= checked
        # SIGQUIT: where each thread is goes to stderr, and it goes on answering (what `up`
        # sends a part that does not stop in time, before it kills it).
        process.send_signal(signal.SIGQUIT)
        time.sleep(0.5)
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
        output = log_path.read_text()
        assert process.returncode == 0, output
        # Found by a new user: the stopped dashboard's URL stayed, and a script waiting
        # for the file at the next start read the old, closed port at once.
        assert not ready.exists()
        assert f"dashboard on {url}/" in output
        assert "(most recent call first):" in output
        assert 'File "' in output.split("(most recent call first):", 1)[1]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
