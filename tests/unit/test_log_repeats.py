"""Repeated log lines pass once per interval, the next one counting the dropped."""

from __future__ import annotations

import logging

import pytest

from streamlearn.log_repeats import RepeatedLines, quiet_repeats


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
