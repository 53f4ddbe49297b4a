"""Scrape targets: parsing ``--scrape``, reading real Prometheus endpoints (served here by
aiohttp), and what the processes section and the counters chart make of the answers."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from streamlearn.dashboard.exceptions import DashboardError
from streamlearn.dashboard.processes import ProcessBoard
from streamlearn.dashboard.scrape import (
    ScrapeResult,
    ScrapeTarget,
    parse_samples,
    scrape_all,
    total,
)
from streamlearn.kafka_local import free_port
from tests.support import serve_app


def exposition(bots: float, clean: float, cpu: float = 1.0, started: float = 1000.0) -> str:
    registry = CollectorRegistry()
    events = Counter("streamlearn_preprocess_events", "", ["outcome"], registry=registry)
    events.labels(outcome="bot").inc(bots)
    events.labels(outcome="clean").inc(clean)
    Gauge("process_resident_memory_bytes", "", registry=registry).set(50 * 2**20)
    Gauge("process_start_time_seconds", "", registry=registry).set(started)
    Counter("process_cpu_seconds", "", registry=registry).inc(cpu)
    return generate_latest(registry).decode()


def test_a_target_is_a_url_optionally_named() -> None:
    assert ScrapeTarget.parse("preprocess=http://127.0.0.1:9101/metrics") == ScrapeTarget(
        "preprocess", "http://127.0.0.1:9101/metrics"
    )
    assert ScrapeTarget.parse("http://127.0.0.1:9101/metrics?a=b") == ScrapeTarget(
        "127.0.0.1:9101", "http://127.0.0.1:9101/metrics?a=b"
    )
    for bad in ("ftp://host/metrics", "name=", "127.0.0.1:9101", "x=http://"):
        with pytest.raises(DashboardError, match="expected"):
            ScrapeTarget.parse(bad)


def test_samples_are_summed_over_matching_labels() -> None:
    samples = parse_samples(exposition(bots=3, clean=7))
    assert total(samples, "streamlearn_preprocess_events_total") == 10
    assert total(samples, "streamlearn_preprocess_events_total", (("outcome", "bot"),)) == 3
    assert total(samples, "streamlearn_no_such_total") is None


async def test_scraping_real_endpoints_up_and_down() -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=exposition(bots=2, clean=5), content_type="text/plain")

    async def broken(_: web.Request) -> web.Response:
        return web.Response(status=500)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/broken", broken)
    runner, url = await serve_app(app)
    try:
        targets = [
            ScrapeTarget("ok", f"{url}/metrics"),
            ScrapeTarget("broken", f"{url}/broken"),
            ScrapeTarget("gone", f"http://127.0.0.1:{free_port()}/metrics"),
        ]
        async with aiohttp.ClientSession() as session:
            ok, broken_result, gone = await scrape_all(session, targets, timeout_s=2)
    finally:
        await runner.cleanup()
    assert ok.samples is not None
    assert ok.error is None
    assert total(ok.samples, "streamlearn_preprocess_events_total") == 7
    assert broken_result.samples is None
    assert broken_result.error == "HTTP 500"
    assert gone.samples is None
    assert gone.error


def test_processes_go_up_and_down_and_restarts_are_seen() -> None:
    a, b = ScrapeTarget("a", "http://a/metrics"), ScrapeTarget("b", "http://b/metrics")
    board = ProcessBoard([a, b])
    board.observe(10.0, [ScrapeResult(a, parse_samples(exposition(0, 0, cpu=1.0))),
                         ScrapeResult(b, None, "HTTP 503")])  # fmt: skip
    board.observe(12.0, [ScrapeResult(a, parse_samples(exposition(0, 0, cpu=2.0))),
                         ScrapeResult(b, None, "HTTP 503")])  # fmt: skip
    first, second = board.state()
    assert first["name"] == "a"
    assert first["up"] is True
    assert first["since"] == 10.0
    assert first["cpu_share"] == pytest.approx(0.5)
    assert first["rss_bytes"] == 50 * 2**20
    assert second["up"] is False
    assert second["error"] == "HTTP 503"
    board.observe(13.0, [ScrapeResult(a, parse_samples(exposition(0, 0, started=2000.0)))])
    assert board.state()[0]["restarts"] == 1


def test_scraped_counters_become_rates_per_target_without_restart_spikes() -> None:
    p1, p2 = ScrapeTarget("p1", "http://p1/metrics"), ScrapeTarget("p2", "http://p2/metrics")
    board = ProcessBoard([p1, p2])

    def observe(t: float, bots1: float | None, bots2: float | None) -> None:
        results = [
            ScrapeResult(target, None if bots is None else parse_samples(exposition(bots, 0)))
            for target, bots in ((p1, bots1), (p2, bots2))
        ]
        board.observe(t, results)

    observe(0.0, 10, 100)
    observe(1.0, 14, 103)
    assert board.counters.table.last("bots") == 7.0
    observe(2.0, 16, None)  # p2 down: left out
    assert board.counters.table.last("bots") == 2.0
    observe(3.0, 1, 110)  # p1 restarted (1 since), p2 back but not seen in the last sample
    assert board.counters.table.last("bots") == 1.0
    observe(4.0, 2, 111)
    assert board.counters.table.last("bots") == 2.0
