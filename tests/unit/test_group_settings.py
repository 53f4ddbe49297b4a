from __future__ import annotations

import asyncio
import logging

import pytest

from streamlearn.runtime import group_settings
from streamlearn.runtime.group_settings import (
    GroupSettingsWatch,
    agent_client_id,
    fingerprint_of,
    other_fingerprints,
    output_settings_text,
    settings_fingerprint,
)
from streamlearn.settings import Settings


def test_the_fingerprint_follows_output_settings_and_agents_not_their_order() -> None:
    settings = Settings()
    same = settings_fingerprint(settings, ["preprocess", "sessionise"])
    assert settings_fingerprint(settings, ["sessionise", "preprocess"]) == same
    other_gap = settings.model_copy(update={"session_gap_s": 120.0})
    assert settings_fingerprint(other_gap, ["preprocess", "sessionise"]) != same
    assert settings_fingerprint(settings, ["preprocess"]) != same


def test_settings_that_do_not_change_outputs_leave_the_fingerprint() -> None:
    settings = Settings()
    quieter = settings.model_copy(update={"log_level": "WARNING", "topic_prefix": "x."})
    assert settings_fingerprint(quieter, ["learner"]) == settings_fingerprint(settings, ["learner"])


def test_other_fingerprints_ignores_this_one_and_clients_without_one() -> None:
    ours, theirs = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    members = [agent_client_id(ours), agent_client_id(theirs), "faust-0.11.3", "rdkafka"]
    assert fingerprint_of(agent_client_id(theirs)) == theirs
    assert fingerprint_of("faust-0.11.3") is None
    assert other_fingerprints(members, ours) == [theirs]
    assert other_fingerprints([agent_client_id(ours)], ours) == []


def test_the_settings_text_names_each_value() -> None:
    text = output_settings_text(Settings(session_gap_s=120.0), ["sessionise"])
    assert text.startswith("agents=sessionise ")
    assert "session_gap_s=120.0" in text


def test_the_watch_says_each_new_set_of_other_settings_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings()
    watch = GroupSettingsWatch(settings, "g", ["sessionise"])
    members = [agent_client_id(watch.fingerprint)]
    monkeypatch.setattr(watch, "members", lambda: list(members))
    with caplog.at_level(logging.WARNING, logger=group_settings.__name__):
        assert watch.check() == []
        members.append(agent_client_id("bbbbbbbbbbbb"))
        assert watch.check() == ["bbbbbbbbbbbb"]
        assert watch.check() == ["bbbbbbbbbbbb"]
        members.pop()
        assert watch.check() == []
        members.append(agent_client_id("bbbbbbbbbbbb"))
        watch.check()
    said = [r.getMessage() for r in caplog.records if "run other settings" in r.getMessage()]
    assert len(said) == 2
    assert "session_gap_s=1800.0" in said[0]


class _RecordingApp:
    """What ``watch_group_settings`` asks of a Faust app: start tasks and timers, recorded."""

    def __init__(self) -> None:
        self.tasks: list[object] = []
        self.timers: list[float] = []

    def task(self, fun: object) -> object:
        self.tasks.append(fun)
        return fun

    def timer(self, interval: float) -> object:
        self.timers.append(interval)
        return lambda fun: fun


def test_the_first_comparison_waits_for_the_worker_not_the_other_way_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no broker the group's description times out (10 s): done in the caller, that
    held the worker's start (``agents run`` said nothing for those 10 s)."""
    watch = GroupSettingsWatch(Settings(), "g", ["sessionise"])
    checked: list[str] = []
    monkeypatch.setattr(watch, "members", lambda: checked.append("described") or [])
    app = _RecordingApp()
    group_settings.watch_group_settings(app, watch)  # type: ignore[arg-type]
    assert checked == []  # nothing asked of Kafka before the worker starts
    assert len(app.tasks) == 1
    assert app.timers == [group_settings.GROUP_CHECK_S]
    asyncio.run(app.tasks[0]())  # type: ignore[operator]
    assert checked == ["described"]  # the worker's first task compares the group at once
