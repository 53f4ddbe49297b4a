"""The worker commits soon after a batch catches its partition up (runtime/commit_pacing.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streamlearn.runtime.commit_pacing import CaughtUpCommits
from streamlearn.runtime.faust_app import BatchingApp
from streamlearn.runtime.faust_store import STORE_URL
from streamlearn.runtime.worker import BATCH_TRANSPORT_SCHEME

pytestmark = pytest.mark.unit

INPUT = TP("telemetry.events", 0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_while_a_commit_is_pending_or_running_make_one_more_commit() -> None:
    made: list[float] = []
    clock = _Clock()
    running = asyncio.Event()

    async def commit() -> None:
        made.append(clock.now)
        await running.wait()

    commits = CaughtUpCommits(commit, gap_s=0.01, clock=clock)
    commits.request()
    await _settle()
    assert made == [100.0]  # the first request commits at once
    commits.request()
    commits.request()  # both while the first commit runs: one more commit covers them
    clock.now = 101.0
    running.set()
    await asyncio.sleep(0.05)
    assert made == [100.0, 101.0]
    await commits.stop()


async def test_commits_are_at_least_the_gap_apart() -> None:
    made: list[float] = []

    async def commit() -> None:
        made.append(asyncio.get_running_loop().time())

    commits = CaughtUpCommits(commit, gap_s=0.1)
    commits.request()
    await _settle()
    commits.request()
    await asyncio.sleep(0.2)
    assert len(made) == 2
    assert made[1] - made[0] >= 0.09


async def test_a_failed_commit_is_logged_and_later_requests_commit_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def commit() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("coordinator moved")

    commits = CaughtUpCommits(commit, gap_s=0.0)
    commits.request()
    await _settle()
    commits.request()
    await _settle()
    assert calls == 2
    assert "coordinator moved" in caplog.text


async def test_stop_cancels_a_commit_not_made_yet() -> None:
    made: list[int] = []

    async def commit() -> None:
        made.append(1)

    commits = CaughtUpCommits(commit, gap_s=10.0)
    commits.request()
    await _settle()
    commits.request()  # waits for the gap
    await commits.stop()
    await asyncio.sleep(0.01)
    assert made == [1]


async def test_stop_abandons_a_commit_that_does_not_finish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by a new user: a worker told to stop (SIGTERM) while Kafka was away waited
    for the commit under way, which waits for the broker: 11.5 minutes, until the broker
    came back, where the documents promise about 20 s."""
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def commit() -> None:
        started.set()
        try:
            await asyncio.Event().wait()  # the coordinator never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    commits = CaughtUpCommits(commit, gap_s=0.0, stop_wait_s=0.05)
    commits.request()
    await started.wait()
    await asyncio.wait_for(commits.stop(), timeout=30)
    assert cancelled.is_set()
    assert "did not finish in 0.05 s" in caplog.text


# -- in the batch consumer ---------------------------------------------------------------


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A never-started app's batch consumer whose commits are recorded, its input's high
    watermark at 3, flow active."""
    app = BatchingApp(
        "runtime-commits-test",
        broker="kafka://127.0.0.1:1",
        broker_consumer=f"{BATCH_TRANSPORT_SCHEME}://127.0.0.1:1",
        store=STORE_URL,
    )
    consumer: Any = app.consumer
    consumer.commits = 0

    async def commit(*args: Any, **kwargs: Any) -> bool:
        consumer.commits += 1
        return True

    monkeypatch.setattr(consumer, "commit", commit)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 3)
    monkeypatch.setattr(consumer, "assignment", lambda: {INPUT})
    consumer.resume_flow()
    yield consumer
    consumer._thread.thread_loop.close()


def _messages(consumer: Any, *offsets: int) -> list[Any]:
    # As the batch consumer hands them over: aiokafka's records, no Faust messages.
    return [
        ConsumerRecord(INPUT.topic, INPUT.partition, o, 0, 0, b"k", b"v", None, 1, 1, [])
        for o in offsets
    ]


async def _handled(tp: TP, messages: list[Any]) -> list[Any]:
    return []


async def test_a_batch_that_reaches_the_partitions_end_is_committed_without_the_timer(
    consumer: Any,
) -> None:
    handled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    await consumer._run_batch(_handled, INPUT, _messages(consumer, 0, 1, 2), handled)
    await _settle()
    assert consumer.commits == 1


async def test_a_batch_short_of_the_partitions_end_leaves_the_commit_to_the_timer(
    consumer: Any,
) -> None:
    handled: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    await consumer._run_batch(_handled, INPUT, _messages(consumer, 0, 1), handled)
    await _settle()
    assert consumer.commits == 0


async def test_stop_lets_a_commit_under_way_finish() -> None:
    finished: list[bool] = []
    release = asyncio.Event()

    async def commit() -> None:
        await release.wait()
        finished.append(True)

    commits = CaughtUpCommits(commit, gap_s=0.0)
    commits.request()
    await _settle()
    stopping = asyncio.ensure_future(commits.stop())
    await _settle()
    assert not stopping.done()
    release.set()
    await stopping
    assert finished == [True]
    commits.request()  # stopped: no more commits
    await _settle()
    assert finished == [True]
