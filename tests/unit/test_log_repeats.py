"""Repeated log lines pass once per interval, the next one counting the dropped."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import pytest
from confluent_kafka import Consumer, KafkaException

from streamlearn import kafka_clients
from streamlearn.cli_common import command_settings
from streamlearn.log_repeats import LIBRDKAFKA_LOG, RepeatedLines, quiet_repeats
from streamlearn.ports import free_port
from streamlearn.settings import Settings


def test_the_same_line_passes_once_per_interval_and_then_counts_the_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    logger = logging.getLogger("aiokafka.test_conn")
    repeated = RepeatedLines(10.0, clock=lambda: now[0])
    logger.addFilter(repeated)
    try:
        with caplog.at_level(logging.ERROR, logger="aiokafka.test_conn"):
            for _ in range(80):  # aiokafka's rate with the broker away, for a second
                logger.error("Unable connect to node with id %s: %s", 1, "[Errno 111]")
                now[0] += 0.0125
            logger.error("Unable to update metadata from [%s]", 1)  # another line passes
            now[0] = 10.5
            logger.error("Unable connect to node with id %s: %s", 1, "[Errno 111]")
    finally:
        logger.removeFilter(repeated)
    assert [r.getMessage() for r in caplog.records] == [
        "Unable connect to node with id 1: [Errno 111]",
        "Unable to update metadata from [1]",
        "Unable connect to node with id 1: [Errno 111] (and 79 more like it in the last 10s)",
    ]


def test_quiet_repeats_reaches_every_logger_of_the_client() -> None:
    for name in ("aiokafka.test_a", "aiokafka.test_a.b", "other.test_c"):
        logging.getLogger(name)
    repeated = quiet_repeats(("aiokafka.test_",))
    try:
        assert repeated in logging.getLogger("aiokafka.test_a").filters
        assert repeated in logging.getLogger("aiokafka.test_a.b").filters
        assert repeated not in logging.getLogger("other.test_c").filters
    finally:
        for name in ("aiokafka.test_a", "aiokafka.test_a.b"):
            logging.getLogger(name).removeFilter(repeated)


def test_librdkafkas_own_count_of_suppressed_lines_is_the_same_line() -> None:
    """librdkafka suppresses identical errors itself and says so in the next one: that
    line, "(after 0ms in state CONNECT, 1 identical error(s) suppressed)", passed as a new
    line beside the plain one (a loaded CI machine's run of the test below got both)."""
    repeated = RepeatedLines(10.0, clock=lambda: 0.0)
    text = "FAIL [rdkafka#consumer-9] [thrd:127.0.0.1:24510/bootstrap]: Connection refused "
    lines = (text + "(after 0ms in state CONNECT)",
             text + "(after 0ms in state CONNECT, 1 identical error(s) suppressed)")  # fmt: skip
    plain, counted = (
        logging.LogRecord("librdkafka", logging.ERROR, "", 0, line, None, None) for line in lines
    )
    assert repeated.filter(plain)
    assert not repeated.filter(counted)


def test_a_counted_line_with_a_percent_sign_formats_under_any_formatter() -> None:
    """mode's formatter (Faust's) formats msg % args even without args."""
    now = [0.0]
    repeated = RepeatedLines(1.0, clock=lambda: now[0])
    record = logging.LogRecord("aiokafka.x", logging.ERROR, "", 0, "GET /a%20b failed", None, None)
    assert repeated.filter(record)
    assert not repeated.filter(logging.makeLogRecord(record.__dict__))
    now[0] = 2.0
    again = logging.makeLogRecord({**record.__dict__})
    assert repeated.filter(again)
    assert again.msg % again.args == "GET /a%20b failed (and 1 more like it in the last 1s)"
    assert again.getMessage() == again.msg % again.args


def test_long_running_confluent_clients_log_through_the_filter_and_commands_not_at_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)
    assert kafka_clients.confluent_config(Settings())["logger"] is LIBRDKAFKA_LOG
    assert any(isinstance(f, RepeatedLines) for f in LIBRDKAFKA_LOG.filters)
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_CRITICAL)
    assert "logger" not in kafka_clients.confluent_config(Settings())


def test_a_real_librdkafka_client_without_its_broker_says_so_once_not_twenty_times_a_second(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A dashboard without a broker printed ~400 "Connect ... failed" lines in 10 s."""
    monkeypatch.setattr(kafka_clients, "_log_level", kafka_clients.LOG_NOTICE)
    nobody = f"127.0.0.1:{free_port()}"  # nothing listens: every connection is refused
    consumer = Consumer(
        kafka_clients.confluent_config(Settings(kafka_bootstrap=nobody), **{"group.id": "g"})
    )
    caplog.set_level(logging.INFO, logger="librdkafka")
    # The filter is process-wide: a line an earlier test's client logged in the last 10 s
    # ("Connection refused", numbers aside) would be held back here. This test starts it
    # afresh.
    for line_filter in LIBRDKAFKA_LOG.filters:
        if isinstance(line_filter, RepeatedLines):
            monkeypatch.setattr(line_filter, "_seen", OrderedDict())
    try:
        started = time.monotonic()
        while time.monotonic() - started < 2:
            with pytest.raises(KafkaException):
                consumer.list_topics(timeout=0.5)
            consumer.poll(0.05)  # librdkafka queues its lines for the thread that polls
    finally:
        consumer.close()
    refused = [r for r in caplog.records if "Connection refused" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in caplog.records]


def test_every_long_running_command_quiets_aiokafkas_repeats() -> None:
    """The schema registry (aiokafka) logged 10,168 lines in the two minutes a write waited
    for a stopped broker: only the agents' command had quieted aiokafka."""
    import aiokafka  # noqa: F401 - its loggers exist once it is imported

    loggers = [logging.getLogger(n) for n in list(logging.root.manager.loggerDict)
               if n.startswith("aiokafka")]  # fmt: skip
    saved = {logger.name: list(logger.filters) for logger in loggers}
    for logger in loggers:  # as a fresh process has them
        logger.filters = [f for f in logger.filters if not isinstance(f, RepeatedLines)]
    fetcher = logging.getLogger("aiokafka.consumer.fetcher")
    try:
        command_settings()
        assert not fetcher.filters, "a command that answers and exits logs as it is"
        command_settings(long_running=True)
        assert [type(f) for f in fetcher.filters] == [RepeatedLines]
        command_settings(long_running=True)
        assert len(fetcher.filters) == 1, "installed once"
        assert all(logger.filters for logger in loggers), "on every aiokafka logger"
    finally:
        for logger in loggers:
            logger.filters = saved[logger.name]
