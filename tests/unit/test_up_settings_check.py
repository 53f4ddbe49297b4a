"""`up` checks the models it would run before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import streamlearn.up
from streamlearn.cli import app


def test_up_refuses_an_unknown_model_before_starting_kafka(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found by a new user: ``STREAMLEARN_MODELS='["nosuch"]' streamlearn up`` started
    Kafka, the registry and every part; label-join, the learner, the monitor and serve
    each exited 1, and stopping it all took over two minutes."""
    started: list[object] = []

    async def run_up(*args: object, **kwargs: object) -> None:
        started.append(args)

    monkeypatch.setattr(streamlearn.up, "run_up", run_up)
    monkeypatch.setenv("STREAMLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMLEARN_MODELS", '["nosuch"]')
    result = CliRunner().invoke(app, ["up", "--port", "23840"])
    assert started == []
    assert result.exit_code == 1
    assert "unknown model spec 'nosuch'" in str(result.exception or result.output)
