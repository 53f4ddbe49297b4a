"""What `up` can refuse without a broker it refuses before starting one: a key file others
may read, a topology file it cannot read. Found by a new user who chmod-ed a restored data
directory's key only after waiting for the embedded broker to start and stop again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from streamlearn import ports
from streamlearn.exceptions import StreamlearnError
from streamlearn.settings import Settings
from streamlearn.up import system
from streamlearn.up.options import UpOptions
from streamlearn.up.signing_key import LOCAL_ROTATION_FILE, LOCAL_SIGNING_KEY_FILE


def _options() -> UpOptions:
    free = (p for p in range(22_400, 22_500) if ports.bindable("127.0.0.1", p))
    kafka, registry, collector, serve, dashboard = (next(free) for _ in range(5))
    return UpOptions(
        embedded_kafka=True, kafka_port=kafka, data_dir=None, start_registry=True,
        registry_port=registry, collector_port=collector, serve_port=serve,
        dashboard_port=dashboard,
    )  # fmt: skip


def _refusal(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[str, list[str]]:
    """What `up` refuses with, and what it started (nothing, when the check came first)."""
    started: list[str] = []

    def no_broker(*args: Any, **kwargs: Any) -> Any:
        started.append("broker")
        raise AssertionError("the broker was started before the check")

    monkeypatch.setattr(system, "embedded_kafka", no_broker)
    with pytest.raises(StreamlearnError) as refused:
        asyncio.run(system.run_up(settings, _options(), lambda _: None, console=Console()))
    return str(refused.value), started


@pytest.mark.parametrize("name", [LOCAL_SIGNING_KEY_FILE, LOCAL_ROTATION_FILE])
def test_a_key_file_others_may_read_is_refused_before_the_broker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    key_file = tmp_path / name
    key_file.write_text("0" * 64 if name == LOCAL_SIGNING_KEY_FILE else "model_signing_key: k\n")
    key_file.chmod(0o644)
    message, started = _refusal(Settings(data_dir=tmp_path), monkeypatch)
    assert f"chmod 600 {key_file}" in message
    assert started == []


def test_an_unreadable_topology_file_is_refused_before_the_broker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    topology = tmp_path / "topology.yaml"
    topology.write_bytes(b"\xff\xfe not text")
    settings = Settings(data_dir=tmp_path, topology_file=topology)
    message, started = _refusal(settings, monkeypatch)
    assert f"cannot read topology file {topology}" in message
    assert started == []
