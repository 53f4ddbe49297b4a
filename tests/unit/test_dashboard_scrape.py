"""Scrape targets: parsing ``--scrape``, reading real Prometheus endpoints (served here by
aiohttp), and what the processes section and the counters chart make of the answers."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from aiohttp import web
from faust.types import TP
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


@pytest.mark.parametrize(
    "bad",
    [
        "a=http://[::1/metrics",  # urlsplit's ValueError ended the command with a traceback
        "http://127.0.0.1:abc/metrics",
        "http://127.0.0.1:99999/metrics",
        "http://:9101/metrics",
    ],
)
def test_a_url_no_scrape_could_reach_is_refused_at_the_start(bad: str) -> None:
    """These were accepted: the dashboard started, and its processes table showed the
    target down for good with the URL itself as the only error."""
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


def lag_exposition(partitions: dict[int, tuple[int, int]]) -> str:
    """An agent worker's ``/metrics`` with its input partitions' (position, lag), from the
    worker's own collector."""
    from streamlearn.runtime.lag import PartitionLag
    from streamlearn.topology.namespace import Namespace

    class Consumer:
        def partition_lags(self) -> dict[Any, tuple[int, int]]:
            return {TP("events.clean", p): pair for p, pair in partitions.items()}

    registry = CollectorRegistry()
    collector = PartitionLag(Namespace(""))
    collector.refresh(Consumer())
    registry.register(collector)
    return generate_latest(registry).decode()


def test_an_agents_input_lag_and_partitions_not_moving_are_shown() -> None:
    agent = ScrapeTarget("sessionise", "http://s/metrics")
    board = ProcessBoard([agent])

    def observe(t: float, partitions: dict[int, tuple[int, int]]) -> dict[str, Any]:
        board.observe(t, [ScrapeResult(agent, parse_samples(lag_exposition(partitions)))])
        return board.state()[0]

    first = observe(0.0, {0: (10, 5), 1: (7, 0), 2: (90, 40)})
    assert first["input_lag"] == 45
    assert first["stalled_partitions"] == 0
    # Partition 2 keeps 40 records waiting at one position; 0 moves; 1 has nothing to read.
    observe(30.0, {0: (12, 5), 1: (7, 0), 2: (90, 40)})
    assert observe(59.0, {0: (14, 5), 1: (7, 0), 2: (90, 40)})["stalled_partitions"] == 0
    later = observe(61.0, {0: (16, 5), 1: (7, 0), 2: (90, 40)})
    assert later["stalled_partitions"] == 1
    assert later["input_lag"] == 45
    # It moves again: no longer stalled.
    assert observe(62.0, {0: (16, 0), 1: (7, 0), 2: (95, 35)})["stalled_partitions"] == 0
    # A process that exports no lag (not an agent): none, not zero.
    other = ScrapeTarget("collector", "http://c/metrics")
    board.observe(63.0, [ScrapeResult(other, parse_samples(exposition(0, 0)))])
    collector = next(p for p in board.state() if p["name"] == "collector")
    assert collector["input_lag"] is None
    assert collector["stalled_partitions"] is None


async def test_a_target_that_answers_no_metrics_says_what_it_answered() -> None:
    """Found by a new user: a target that was not a metrics endpoint (the registry's `/`,
    answering `{}`) showed "unparsable metrics: " and nothing after it."""

    async def json_list(_: web.Request) -> web.Response:
        return web.Response(text="{}", content_type="application/json")

    app = web.Application()
    app.router.add_get("/", json_list)
    runner, url = await serve_app(app)
    try:
        async with aiohttp.ClientSession() as session:
            (result,) = await scrape_all(session, [ScrapeTarget("registry", f"{url}/")], 2)
    finally:
        await runner.cleanup()
    assert result.samples is None
    assert result.error == "not Prometheus metrics (application/json, begins '{}')"
