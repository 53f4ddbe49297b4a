"""The client IP the collector records and rate-limits by: behind a trusted proxy, the
address the proxy added to X-Forwarded-For (the last), never one the client wrote."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from streamlearn.collector.state import Collector
from streamlearn.kafka_local import free_port
from streamlearn.serde.memory import InMemoryRegistry
from streamlearn.settings import Settings


def _client_ip(forwarded: str | None, trusted: bool = True) -> str | None:
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        collector_trust_forwarded_for=trusted,
    )
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    request = make_mocked_request("POST", "/v1/events", headers=headers)
    collector = Collector(settings, InMemoryRegistry())
    try:
        return collector.client_ip(request)
    finally:
        collector.producer.close(0)  # its poller thread would keep the Kafka client alive


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [
        ("10.9.9.9", "10.9.9.9"),
        # A client that sends the header itself gets the proxy's address appended: its own
        # entries were taken first, which evaded the per-IP limit and forged the IP stored.
        ("not-an-ip-1, 10.9.9.9", "10.9.9.9"),
        ("203.0.113.7, 10.9.9.9", "10.9.9.9"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_address_a_trusted_proxy_added_is_the_client_s(forwarded: str, recorded: str) -> None:
    assert _client_ip(forwarded) == recorded


def test_an_entry_that_is_not_an_address_is_not_recorded_as_one() -> None:
    peer = _client_ip(None)
    assert _client_ip("not-an-ip") == peer
    assert _client_ip("10.9.9.9, ") == peer


def test_the_header_means_nothing_unless_trusted() -> None:
    assert _client_ip("10.9.9.9", trusted=False) == _client_ip(None, trusted=False)
