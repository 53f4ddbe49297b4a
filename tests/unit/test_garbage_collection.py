"""The collector settings of long-running processes (streamlearn/garbage_collection.py)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from streamlearn import garbage_collection
from streamlearn.cli import app


@pytest.fixture
def restored_collector() -> Iterator[None]:
    """Whatever a test does to this process's collector is undone after it."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_is_alive_and_raises_the_young_threshold() -> None:
    # In a process of its own: the collector's state is global to the interpreter.
    script = (
        "import gc, json\n"
        "from streamlearn.garbage_collection import settle_long_lived_heap\n"
        "kept = [dict(n=i) for i in range(1000)]\n"
        "garbage = []; garbage.append(garbage); del garbage\n"
        "settle_long_lived_heap()\n"
        "frozen = gc.get_freeze_count()\n"
        "print(json.dumps([gc.get_threshold(), frozen, gc.collect()]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    thresholds, frozen, collected_after = json.loads(out)
    assert thresholds == [garbage_collection.YOUNG_THRESHOLD, 10, 10]
    assert frozen >= 1000  # the kept records at least: out of every later scan
    assert collected_after == 0  # the cycle made at start-up was freed, not frozen


def test_agents_run_settles_the_heap_before_the_worker_starts(
    monkeypatch: pytest.MonkeyPatch, restored_collector: None
) -> None:
    import faust

    from streamlearn.runtime import group_settings, learner_groups, partition_growth, worker

    seen: dict[str, Any] = {}

    class Runtime:
        app = type("App", (), {"conf": type("Conf", (), {"id": "g"})()})()
        started_partitions: ClassVar[dict[str, int]] = {}

        def input_topics(self) -> frozenset[str]:
            return frozenset()

    class Worker:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def execute_from_commandline(self) -> None:
            seen["threshold"] = gc.get_threshold()[0]
            seen["frozen"] = gc.get_freeze_count()

    gc.unfreeze()
    monkeypatch.setattr(worker, "create_faust_app", lambda *a, **k: Runtime())
    monkeypatch.setattr(faust, "Worker", Worker)
    # The checks of the group's members ask a broker, which a unit test has not.
    monkeypatch.setattr(learner_groups, "second_learner_group", lambda *a: None)
    monkeypatch.setattr(group_settings, "watch_group_settings", lambda *a: None)
    monkeypatch.setattr(partition_growth, "stop_when_partitions_grow", lambda *a: None)
    # The learner's key is checked before the worker is made.
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "ab" * 32)
    result = CliRunner().invoke(
        app, ["agents", "run", "--only", "learner", "--group", "streamlearn-learner"]
    )
    assert result.exit_code == 0, result.output
    assert seen["threshold"] == garbage_collection.YOUNG_THRESHOLD
    assert seen["frozen"] > 0


def test_a_prediction_worker_settles_the_heap_before_it_serves(
    monkeypatch: pytest.MonkeyPatch, restored_collector: None
) -> None:
    # A batch request keeps a few hundred containers alive until its telemetry is drained:
    # with Python's threshold (700) the collector scanned them over and over.
    from aiohttp import web

    from streamlearn.serving import runner

    seen: dict[str, Any] = {}

    def serve(app: web.Application, **kwargs: Any) -> None:
        seen["threshold"] = gc.get_threshold()[0]
        seen["frozen"] = gc.get_freeze_count()
        kwargs["loop"].close()

    gc.unfreeze()
    monkeypatch.setattr(runner, "serve_until_stopped", serve)
    runner.run_worker(web.Application(), host="127.0.0.1", port=0)
    assert seen["threshold"] == garbage_collection.YOUNG_THRESHOLD
    assert seen["frozen"] > 0
