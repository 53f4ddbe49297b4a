"""The app SDK refuses what the collector refuses, before anything is sent (no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from streamlearn.client import TelemetryClient
from streamlearn.ports import free_port
from streamlearn.serde import EncodeError, InMemoryRegistry
from streamlearn.settings import Settings


@pytest.fixture
def telemetry() -> Iterator[TelemetryClient]:
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    client = TelemetryClient(settings, app_version="test 1.0", registry=InMemoryRegistry())
    yield client
    client._producer.purge()
    client._producer.flush(0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda t: t.feedback("r-1", "click", client_ts="2026-01-01"), "client_ts"),
        (lambda t: t.event("page_view", "u", client_ts=1e30), "client_ts"),
        (lambda t: t.event("page_view", "u", client_ts=True), "client_ts"),
        (lambda t: t.event("page_view", "u", client_ts=float("nan")), "client_ts"),
        (lambda t: t.feedback("", "click"), "request_id"),
        (lambda t: t.feedback("  ", "click"), "request_id"),
        (lambda t: t.event("", "u-1"), "event_type"),
        (lambda t: t.event("page_view", ""), "user_id"),
        (lambda t: t.event("page_view", "\u0085"), "user_id"),
    ],
)
def test_what_the_collector_refuses_is_an_encode_error_naming_the_field(
    telemetry: TelemetryClient, call: Any, field: str
) -> None:
    """Found by a new user: a text `client_ts` raised TypeError, 1e30 OverflowError, and
    empty ids and event types were sent (the collector refuses them, 400 "must not be
    empty"), though the SDK promises an EncodeError naming the field."""
    with pytest.raises(EncodeError, match=field):
        call(telemetry)


def test_times_are_taken_as_the_collector_takes_them(telemetry: TelemetryClient) -> None:
    for when in (datetime(2026, 1, 1, tzinfo=UTC), 1_796_000_000_000, 1.796e12,
                 "2026-01-01T00:00:00Z"):  # fmt: skip
        telemetry.event("page_view", "u-1", client_ts=when)  # type: ignore[arg-type]
