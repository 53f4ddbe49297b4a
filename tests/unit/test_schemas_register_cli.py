"""`streamlearn schemas register` against a registry that cannot write: it says so soon."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from streamlearn.cli import app


class TimingOutRegistry(BaseHTTPRequestHandler):
    """Answers every registration as a registry whose Kafka does not confirm writes."""

    posts: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append(self.path)
        body = json.dumps(
            {"error_code": 50002, "message": "Operation timed out: writing to _schemas"}
        ).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    TimingOutRegistry.posts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), TimingOutRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_registry_that_cannot_write_is_asked_twice_not_four_times(registry_url: str) -> None:
    """Each answer of our registry comes after its write timeout: confluent-kafka's client
    asked four times (three retries), and with the registry's broker stopped the command
    said nothing for two minutes."""
    result = CliRunner().invoke(app, ["schemas", "register", "--registry-url", registry_url])
    assert result.exit_code == 1
    assert len(TimingOutRegistry.posts) == 2, TimingOutRegistry.posts
    assert "Operation timed out: writing to _schemas (50002)" in str(result.exception)


class NotARegistry(BaseHTTPRequestHandler):
    """A web server that is not a schema registry (the collector's port, say)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"<html>not found</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_that_is_no_registry_is_said_to_be_one() -> None:
    """Found by a new user: `--registry-url` at the collector's port said
    `refused telemetry.events-value: None (None)`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotARegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(app, ["schemas", "register", "--registry-url", url])
    finally:
        server.shutdown()
        server.server_close()
    said = str(result.exception)
    assert "None" not in said
    assert f"answered HTTP 404 without a schema registry's error: is {url} one?" in said
