"""When a starting worker opens its port: once its follower has caught up, or after the wait."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from streamlearn.serving.app import _caught_up_or_late
from streamlearn.serving.follower import StateFollower


class _Follower:
    """What the wait reads of a :class:`StateFollower`: its ``caught_up`` event."""

    def __init__(self) -> None:
        self.caught_up = asyncio.Event()


def _as_follower(follower: _Follower) -> StateFollower:
    return cast(StateFollower, cast(Any, follower))


async def test_the_port_opens_as_soon_as_the_follower_has_caught_up() -> None:
    follower = _Follower()
    waiting = asyncio.create_task(_caught_up_or_late(_as_follower(follower), 60.0))
    await asyncio.sleep(0.01)
    assert not waiting.done(), "it waits while the follower reads"
    follower.caught_up.set()
    await asyncio.wait_for(waiting, 5.0)


async def test_without_kafka_the_port_opens_after_the_wait_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamlearn.serving.app"):
        await asyncio.wait_for(_caught_up_or_late(_as_follower(_Follower()), 0.05), 5.0)
    assert "not read to their end within 0.05s" in caplog.text


async def test_a_wait_of_zero_opens_the_port_at_once_and_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamlearn.serving.app"):
        await asyncio.wait_for(_caught_up_or_late(_as_follower(_Follower()), 0.0), 1.0)
    assert caplog.text == ""
