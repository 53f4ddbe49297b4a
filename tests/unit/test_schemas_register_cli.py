"""`streamlearn schemas register` against servers that do not register: it says so soon,
and says what answered."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from streamlearn.cli import app

TIMED_OUT = (
    500,
    "application/vnd.schemaregistry.v1+json",
    json.dumps({"error_code": 50002, "message": "Operation timed out: writing to _schemas"}),
)
"""How our registry answers a write its Kafka did not confirm."""
NOT_A_REGISTRY = (404, "text/html", "<html>not found</html>")
"""How a web server that is no schema registry answers (the collector's port, say)."""


class Answering(BaseHTTPRequestHandler):
    """Answers every POST with :attr:`answer`, recording the paths posted to."""

    answer: ClassVar[tuple[int, str, str]] = TIMED_OUT
    posts: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.posts.append(self.path)
        status, content_type, text = self.answer
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Callable[[tuple[int, str, str]], str]]:
    """Starts a server answering as given; returns its URL."""
    started: list[ThreadingHTTPServer] = []

    def start(answer: tuple[int, str, str]) -> str:
        Answering.answer, Answering.posts = answer, []
        http = ThreadingHTTPServer(("127.0.0.1", 0), Answering)
        threading.Thread(target=http.serve_forever, daemon=True).start()
        started.append(http)
        return f"http://127.0.0.1:{http.server_address[1]}"

    yield start
    for http in started:
        http.shutdown()
        http.server_close()


def test_a_registry_that_cannot_write_is_asked_twice_not_four_times(
    server: Callable[[tuple[int, str, str]], str],
) -> None:
    """Each answer of our registry comes after its write timeout: confluent-kafka's client
    asked four times (three retries), and with the registry's broker stopped the command
    said nothing for two minutes."""
    url = server(TIMED_OUT)
    result = CliRunner().invoke(app, ["schemas", "register", "--registry-url", url])
    assert result.exit_code == 1
    assert len(Answering.posts) == 2, Answering.posts
    assert "Operation timed out: writing to _schemas (50002)" in str(result.exception)


def test_a_server_that_is_no_registry_is_said_to_be_one(
    server: Callable[[tuple[int, str, str]], str],
) -> None:
    """Found by a new user: `--registry-url` at the collector's port said
    `refused telemetry.events-value: None (None)`."""
    url = server(NOT_A_REGISTRY)
    result = CliRunner().invoke(app, ["schemas", "register", "--registry-url", url])
    said = str(result.exception)
    assert "None" not in said
    assert f"answered HTTP 404 without a schema registry's error: is {url} one?" in said


def test_a_schema_name_no_schema_has_is_said_with_its_line_before_anything_is_registered(
    server: Callable[[tuple[int, str, str]], str], tmp_path: Path
) -> None:
    """Found by a new user: `value_schema: CleanEvnt` in a copy of topics.yaml registered
    the schemas of the topics above it, then failed with `no schema named 'CleanEvnt'`,
    naming neither the file, its line nor the topic."""
    shipped = (Path(__file__).resolve().parents[2] / "topology" / "topics.yaml").read_text()
    typo = shipped.replace("value_schema: CleanEvent", "value_schema: CleanEvnt")
    assert typo != shipped
    topology = tmp_path / "topics.yaml"
    topology.write_text(typo)
    line = typo.splitlines().index("    value_schema: CleanEvnt") + 1
    url = server(TIMED_OUT)
    result = CliRunner().invoke(
        app, ["schemas", "register", "--registry-url", url, "--file", str(topology)]
    )
    assert result.exit_code == 1
    assert Answering.posts == [], "nothing is registered"
    assert f"{topology}:{line}: topics.3.value_schema: no schema named 'CleanEvnt'" in str(
        result.exception
    )
