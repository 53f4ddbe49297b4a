"""The metrics ports `up` gives its agents and the archive: one each, none of them a port
`up` was told to use for another server (all are picked before any part listens)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from streamlearn import ports
from streamlearn.settings import Settings
from streamlearn.up.doors import Doors
from streamlearn.up.kafka_users import KafkaUsers
from streamlearn.up.options import UpOptions
from streamlearn.up.parts import part_specs


def _free(count: int) -> list[int]:
    free = (p for p in range(20_000, 32_000) if ports.bindable("127.0.0.1", p))
    return [next(free) for _ in range(count)]


def test_every_part_gets_its_own_port_and_none_named_by_an_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka, registry, collector, serve, dashboard, *spare = _free(20)
    options = UpOptions(
        embedded_kafka=True, kafka_port=kafka, data_dir=None, start_registry=True,
        registry_port=registry, collector_port=collector, serve_port=serve,
        dashboard_port=dashboard,
    )  # fmt: skip

    def picks() -> Iterator[int]:
        # The worst luck: every option's port first, then each spare one twice.
        yield from (kafka, registry, collector, serve, dashboard)
        for port in spare:
            yield from (port, port)

    candidates = picks()
    monkeypatch.setattr(ports, "_candidate", lambda low: next(candidates))
    monkeypatch.setattr(ports, "_given", set())
    specs = part_specs(Settings(data_dir=tmp_path), options, Doors(), KafkaUsers(None))
    # The agents and the archive: the parts whose port `up` picks (ready at /readyz).
    metrics = [urlsplit(s.ready_url).port for s in specs if str(s.ready_url).endswith("/readyz")]
    assert len(metrics) >= 6  # the agents and the archive
    assert len(set(metrics)) == len(metrics)
    assert not set(metrics) & {kafka, registry, collector, serve, dashboard}
