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


def test_the_ports_up_and_the_broker_pick_come_from_the_port_range_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user on a machine where only a range of ports was theirs: the
    controller's and every agent's and the archive's metrics port were picked anywhere in
    10000-32767, and no setting could keep them in the range."""
    from pydantic import ValidationError

    from streamlearn.kafka_local import embedded_kafka

    low = _free(1)[0]
    while not all(ports.bindable("127.0.0.1", p) for p in range(low, low + 12)):
        low += 12
    settings = Settings(data_dir=tmp_path, port_range=f"{low}-{low + 11}")
    options = UpOptions(
        embedded_kafka=True, kafka_port=low + 20, data_dir=tmp_path, start_registry=True,
        registry_port=low + 21, collector_port=low + 22, serve_port=low + 23,
        dashboard_port=low + 24,
    )  # fmt: skip
    monkeypatch.setattr(ports, "_given", set())
    specs = part_specs(settings, options, Doors(), KafkaUsers(None))
    picked = [urlsplit(s.ready_url).port for s in specs if str(s.ready_url).endswith("/readyz")]
    assert len(picked) >= 6
    assert all(low <= port <= low + 11 for port in picked), picked
    broker = embedded_kafka(settings, port=low + 20)
    assert broker.config.port_range == (low, low + 11)
    monkeypatch.setattr(ports, "_given", set(range(low, low + 12)))
    with pytest.raises(OSError, match=f"no free port in {low}-{low + 11}"):
        ports.free_port(within=(low, low + 11))
    for wrong in ("22700", "22799-22700", "80-90", "a-b", "22700-70000"):
        with pytest.raises(ValidationError, match="LOW-HIGH"):
            Settings(port_range=wrong)
