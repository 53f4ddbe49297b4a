"""`streamlearn serve`'s options: ports that cannot all be bound refused before anything starts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from streamlearn.cli import app


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        # Found by a new user: accepted, "process 1: metrics and probes on ...:21110" printed
        # beside "prediction worker on ...:21110", then worker 1 failed to bind (a traceback)
        # and stopped the other.
        (["--port", "21110", "--workers", "2", "--metrics-port", "21109"],
         "--metrics-port 21109 with --workers 2 takes ports 21109-21110, --port 21110 among them"),
        (["--port", "21110", "--metrics-port", "21110"],
         "--metrics-port 21110 takes port 21110, --port 21110 among them"),
    ],
)  # fmt: skip
def test_metrics_ports_that_take_the_shared_port_are_refused(
    monkeypatch: pytest.MonkeyPatch, arguments: list[str], said: str
) -> None:
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "unit-test-signing-key")
    monkeypatch.setenv("STREAMLEARN_SERVE_STARTUP_WAIT_S", "0")

    def no_serving(*args: object, **kwargs: object) -> int:
        raise AssertionError("workers were started")

    monkeypatch.setattr("streamlearn.serving.runner.run_workers", no_serving)
    result = CliRunner().invoke(app, ["serve", *arguments])
    assert result.exit_code == 1, result.output
    assert said in result.output


def test_the_ready_line_names_the_models_as_up_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found restarting a worker of `up --simulate`: `up` announced "(models: ctr, ctr_tree)"
    # and the restarted worker "(models: ['ctr', 'ctr_tree'])", a Python list's text.
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "unit-test-signing-key")
    monkeypatch.setenv("STREAMLEARN_MODELS", '["ctr", "ctr_tree"]')

    def started(*args: object, print: Callable[[str], None], **kwargs: object) -> int:
        print("======== Running on http://127.0.0.1:22830 ========")
        return 0

    monkeypatch.setattr("streamlearn.serving.runner.run_workers", started)
    result = CliRunner().invoke(app, ["serve", "--port", "22830"])
    assert result.exit_code == 0, result.output
    assert "prediction worker on http://127.0.0.1:22830 (models: ctr, ctr_tree)" in result.output
