"""bench/bench_kafka.py: the embedded broker a benchmark starts leaves nothing in /tmp."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_kafka.py"

bench_kafka = load_script(SCRIPT, "bench_kafka_under_test")


class FakeBroker:
    """What a benchmark uses of the embedded broker: start, its address, stop; it writes
    its log segments under its data directory, as Kafka does."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.stopped = False

    def start(self) -> SimpleNamespace:
        (self.data_dir / "kraft-logs").mkdir(parents=True)
        (self.data_dir / "kraft-logs" / "00000000000000000000.log").write_bytes(b"x" * 1024)
        return SimpleNamespace(bootstrap="127.0.0.1:1")

    def stop(self) -> bool:
        self.stopped = True
        return True


def test_stopping_the_bench_broker_removes_its_data(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Found by a new user: every benchmark run left its broker's data directory in /tmp
    (tmpXXXXXXXX/k: 3-13 MB at the smallest sizes; fifteen of them, 1.2 GB, on the
    benchmark machine, up to 260 MB each). Stopping the broker now removes it."""
    started: list[FakeBroker] = []

    def embedded(settings: object, *, port: int, data_dir: Path) -> FakeBroker:
        started.append(FakeBroker(data_dir))
        return started[-1]

    monkeypatch.delenv("STREAMLEARN_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(bench_kafka.tempfile, "tempdir", None)  # read TMPDIR again
    monkeypatch.setattr(bench_kafka, "embedded_kafka", embedded)
    bootstrap, broker = bench_kafka.bench_broker()
    assert bootstrap == "127.0.0.1:1"
    assert broker is not None
    assert list(tmp_path.iterdir())  # its data, while it runs
    broker.stop()
    assert started[0].stopped
    assert list(tmp_path.iterdir()) == []


def test_a_cluster_named_by_the_environment_is_used_as_it_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMLEARN_KAFKA_BOOTSTRAP", "kafka:9092")
    assert bench_kafka.bench_broker() == ("kafka:9092", None)
