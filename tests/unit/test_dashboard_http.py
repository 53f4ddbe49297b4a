"""The dashboard's HTTP side without a broker: security headers on every response, a page
without inline script or style, server-sent events (format, first state, deltas,
heartbeats, clients that leave, shutdown), and the JSON endpoints."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streamlearn.dashboard.app import STATIC_DIR, create_dashboard_app, scrape_targets
from streamlearn.dashboard.context import DASHBOARD
from streamlearn.dashboard.exceptions import DashboardError
from streamlearn.dashboard.openapi import openapi_document
from streamlearn.dashboard.runner import remove_ready_file, serve_dashboard, write_ready_file
from streamlearn.dashboard.security import SECURITY_HEADERS
from streamlearn.dashboard.sse import sse_comment, sse_event, sse_json, sse_retry
from streamlearn.dashboard.state import Decoded, FollowStatus
from streamlearn.settings import Settings


def make_app(**options: Any) -> web.Application:
    return create_dashboard_app(
        Settings(topic_prefix="unit."), kafka=False, tick_s=options.pop("tick_s", 0.05), **options
    )


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app())) as test_client:
        yield test_client


def alert_record(key: str) -> Decoded:
    return Decoded(
        "monitoring.alerts",
        {
            "alert_key": key,
            "kind": "stale_model",
            "severity": "critical",
            "message": "no fresh model",
            "labels": {},
            "source": "test",
            "raised_ts": datetime(2026, 1, 5, tzinfo=UTC),
        },
    )


# --- the wire format ------------------------------------------------------------------


def test_an_event_is_named_lines_of_data_and_a_blank_line() -> None:
    assert sse_event("delta", '{"a":1}') == b'event: delta\ndata: {"a":1}\n\n'
    assert sse_event("x", "one\ntwo", event_id="7") == b"event: x\nid: 7\ndata: one\ndata: two\n\n"
    assert sse_json("state", {"b": [1, None]}) == b'event: state\ndata: {"b":[1,null]}\n\n'
    assert sse_retry(2000) == b"retry: 2000\n\n"
    assert sse_comment("ping") == b": ping\n\n"


def test_an_event_refuses_a_newline_in_its_name_and_nan_in_its_data() -> None:
    with pytest.raises(ValueError, match="newline"):
        sse_event("a\nb", "{}")
    with pytest.raises(ValueError, match="JSON compliant"):
        sse_json("delta", {"auc": float("nan")})


# --- headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/static/dashboard.js",
        "/static/dashboard.css",
        "/static/vendor/uPlot.iife.min.js",
        "/api/state",
        "/healthz",
        "/readyz",
        "/metrics",
        "/no/such/page",
        "/static/no-such-file.js",
    ],
)
async def test_every_response_carries_the_security_headers(
    client: TestClient[web.Request, web.Application], path: str
) -> None:
    response = await client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (path, name)
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp


async def test_the_event_stream_and_a_405_carry_them_too(
    client: TestClient[web.Request, web.Application],
) -> None:
    async with client.get("/api/events") as response:
        assert (
            response.headers["Content-Security-Policy"]
            == SECURITY_HEADERS["Content-Security-Policy"]
        )
    response = await client.post("/api/state")
    assert response.status == 405
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_static_files_have_their_types(
    client: TestClient[web.Request, web.Application],
) -> None:
    types: dict[str, str | tuple[str, ...]] = {
        "/": "text/html",
        # Either is a JavaScript MIME type to a browser (nosniff accepts both).
        "/static/dashboard.js": ("text/javascript", "application/javascript"),
        "/static/dashboard.css": "text/css",
        "/static/vendor/uPlot.min.css": "text/css",
        "/static/favicon.svg": "image/svg+xml",
        "/api/state": "application/json",
    }
    for path, content_type in types.items():
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type in (
            content_type if isinstance(content_type, tuple) else (content_type,)
        ), path


# --- the page ----------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.styles = 0
        self.style_attributes: list[str] = []
        self.handlers: list[str] = []
        self.links: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True
        if tag == "style":
            self.styles += 1
        if "style" in attributes:
            self.style_attributes.append(tag)
        self.handlers += [name for name in attributes if name.startswith("on")]
        if tag == "link" and attributes.get("href"):
            self.links.append(str(attributes["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


def test_the_page_has_no_inline_script_style_or_handler() -> None:
    page = _Page()
    page.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    # Relative: behind an ingress that gives the dashboard a path, they are under it.
    assert [s.get("src") for s in page.scripts] == [
        "static/vendor/uPlot.iife.min.js",
        "static/dashboard.js",
    ]
    assert page.inline == []
    assert page.styles == 0
    assert page.style_attributes == []
    assert page.handlers == []
    for href in page.links:
        assert (STATIC_DIR / href.removeprefix("static/")).is_file(), href


def test_the_script_builds_no_html_from_strings_and_evaluates_nothing() -> None:
    script = (STATIC_DIR / "dashboard.js").read_text(encoding="utf-8")
    for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                      "new Function", "setAttribute(\"style\"", "cssText"):  # fmt: skip
        assert forbidden not in script, forbidden
    assert not re.search(r"set(Timeout|Interval)\(\s*[\"']", script)


# --- the endpoints -----------------------------------------------------------------------


async def test_api_state_is_the_whole_state(
    client: TestClient[web.Request, web.Application],
) -> None:
    client.app[DASHBOARD].state.apply([alert_record("a")])
    response = await client.get("/api/state")
    body = await response.json()
    assert response.headers["Cache-Control"] == "no-store"
    assert body["config"]["topic_prefix"] == "unit."
    assert body["alerts"]["items"][0]["key"] == "a"
    assert body["alerts"]["items"][0]["raised_ts"] == datetime(2026, 1, 5, tzinfo=UTC).timestamp()


async def test_healthz_and_metrics(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"
    response = await client.get("/metrics")
    assert "streamlearn_dashboard_sse_clients" in await response.text()


async def test_readyz_says_what_keeps_the_dashboard_from_its_topics(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Without a broker the dashboard's /healthz answered 200 and nothing else said so
    but a field of /api/state; /readyz answers 503 with the reason (liveness stays 200:
    restarting the dashboard brings no broker back)."""
    state = client.app[DASHBOARD].state
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json()) == {"status": "ready"}
    state.set_follow_status(FollowStatus(error="metadata: Broker transport failure"))
    state.set_offsets_error("end offsets: Failed to get metadata")
    unready = await client.get("/readyz")
    assert unready.status == 503
    assert unready.headers["Cache-Control"] == "no-store"
    assert (await unready.json()) == {
        "status": "not ready",
        "errors": ["metadata: Broker transport failure", "end offsets: Failed to get metadata"],
    }
    alive = await client.get("/healthz")
    assert alive.status == 200
    assert (await alive.json())["errors"] == [
        "metadata: Broker transport failure",
        "end offsets: Failed to get metadata",
    ]
    state.set_follow_status(FollowStatus())
    state.set_offsets_error(None)
    assert (await client.get("/readyz")).status == 200


async def _events(response: aiohttp.ClientResponse, count: int) -> list[tuple[str, Any]]:
    """The next ``count`` events of a stream: (name, decoded data)."""
    events: list[tuple[str, Any]] = []
    name, data = "", ""
    async with asyncio.timeout(10):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data += line.removeprefix("data: ")
            elif line == "" and name:
                events.append((name, json.loads(data)))
                name, data = "", ""
    return events


async def test_the_event_stream_sends_the_state_then_deltas_and_heartbeats(
    client: TestClient[web.Request, web.Application],
) -> None:
    state = client.app[DASHBOARD].state
    async with client.get("/api/events") as response:
        assert response.content_type == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        [(name, first)] = await _events(response, 1)
        assert name == "state"
        assert first["alerts"]["total"] == 0
        [(name, _)] = await _events(response, 1)
        assert name == "heartbeat"  # nothing changed in a tick
        state.apply([alert_record("live")])
        for name, data in await _events(response, 3):
            if name == "delta":
                assert data["alerts"]["items"][0]["key"] == "live"
                assert "models" not in data
                break
        else:
            pytest.fail("no delta after an alert")


async def test_a_client_that_leaves_is_no_longer_counted() -> None:
    app = make_app()
    metrics = app[DASHBOARD].metrics
    async with TestClient(TestServer(app)) as test_client:
        async with test_client.get("/api/events") as response:
            await _events(response, 1)
            assert metrics.sse_clients._value.get() == 1
        async with asyncio.timeout(5):
            while metrics.sse_clients._value.get() != 0:
                await asyncio.sleep(0.02)


async def test_stopping_ends_open_event_streams_at_once() -> None:
    app = make_app(tick_s=30.0)
    stop = asyncio.Event()
    urls: list[str] = []
    server = asyncio.create_task(
        serve_dashboard(app, host="127.0.0.1", port=0, stop=stop, ready=urls.append)
    )
    async with asyncio.timeout(5):
        while not urls:
            await asyncio.sleep(0.01)
    async with aiohttp.ClientSession() as session, session.get(urls[0] + "/api/events") as response:
        await _events(response, 1)
        stop.set()
        async with asyncio.timeout(3):
            await server
            assert await response.content.read() == b""  # the stream ended, no error


def test_scrape_targets_must_have_distinct_names() -> None:
    assert [t.name for t in scrape_targets(["http://a:1/metrics", "b=http://a:2/metrics"])] == [
        "a:1",
        "b",
    ]
    with pytest.raises(DashboardError, match="two targets named x"):
        scrape_targets(["x=http://a:1/metrics", "x=http://a:2/metrics"])


def test_the_ready_file_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "ready"
    write_ready_file(path, "http://127.0.0.1:8080")
    assert path.read_text() == "http://127.0.0.1:8080\n"
    assert [p.name for p in tmp_path.iterdir()] == ["ready"]


def test_a_stopped_dashboard_removes_its_ready_file_only(tmp_path: Path) -> None:
    """What a stopped dashboard leaves: nothing of its own, and another's file as it is."""
    path = tmp_path / "ready"
    write_ready_file(path, "http://127.0.0.1:8080")
    remove_ready_file(path, "http://127.0.0.1:8080")
    assert list(tmp_path.iterdir()) == []
    remove_ready_file(path, "http://127.0.0.1:8080")  # gone already: nothing to do
    write_ready_file(path, "http://127.0.0.1:9090")  # a dashboard started since
    remove_ready_file(path, "http://127.0.0.1:8080")
    assert path.read_text() == "http://127.0.0.1:9090\n"


@pytest.mark.parametrize("where", ["missing directory", "a directory"])
def test_an_unusable_ready_file_is_refused_before_the_dashboard_starts(
    tmp_path: Path, where: str
) -> None:
    """Found by a new user: a missing directory was a traceback after the server started,
    a directory an error naming the dashboard's own temporary file."""
    from typer.testing import CliRunner

    from streamlearn.cli import app

    path = tmp_path / "nosuch" / "ready" if where == "missing directory" else tmp_path
    result = CliRunner().invoke(app, ["dashboard", "--port", "0", "--ready-file", str(path)])
    assert result.exit_code == 1
    assert f"--ready-file {path}: " in result.output
    assert "Traceback" not in result.output
    assert ".ready" not in result.output


def test_the_document_names_every_route_and_only_those() -> None:
    app = make_app()
    routed = {
        resource.canonical
        for resource in app.router.resources()
        if not resource.canonical.startswith("/static")
    }
    assert routed == set(openapi_document()["paths"])


async def test_readyz_is_503_while_none_of_the_followed_topics_exists(
    client: TestClient[web.Request, web.Application],
) -> None:
    """Found by a new user: with a topic prefix of another namespace (`nope.`) /readyz said
    ready though every topic it follows was missing, and /healthz named them without the
    prefix (`model.state`), not as the topics it looked for."""
    state = client.app[DASHBOARD].state
    missing = ["nope.model.state", "nope.model.metrics"]
    state.set_follow_status(FollowStatus(missing=missing))
    unready = await client.get("/readyz")
    assert unready.status == 503
    assert (await unready.json())["errors"] == [
        "none of the topics it follows exists (nope.model.state, nope.model.metrics): is the "
        "topic prefix right, and were the topics applied (streamlearn topics apply)?"
    ]
    state.set_follow_status(FollowStatus(assigned={"model.state": 1}, missing=missing[1:]))
    assert (await client.get("/readyz")).status == 200  # one is there: the page shows it
