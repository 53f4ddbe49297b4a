"""Ports streamlearn picks for servers it starts: never where clients' sockets land.

A port from ``bind(port 0)`` is an ephemeral one, the range the kernel also gives to every
outgoing connection. A part told to listen on it some seconds later could find it taken
by a client socket (another part's Kafka connection): `up --simulate` in CI saw label-join
fail to bind its metrics port and crash on every restart with the same port.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streamlearn import ports
from streamlearn.kafka_local import free_port


def test_a_free_port_is_below_the_ephemeral_range_and_bindable() -> None:
    low, _ = ports.ephemeral_range()
    for _ in range(50):
        port = free_port()
        assert 1024 <= port < low
        with socket.socket() as server:
            server.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = next(p for p in range(20_000, 32_000) if ports.bindable("127.0.0.1", p))
        picks = iter([busy, busy, free])
        monkeypatch.setattr(ports, "_candidate", lambda low: next(picks))
        monkeypatch.setattr(ports, "ephemeral_range", lambda: (busy + 1, 60_999))
        assert ports.free_port() == free


def test_the_range_is_read_from_the_kernel_or_defaults(tmp_path: Path) -> None:
    setting = tmp_path / "ip_local_port_range"
    setting.write_text("40000\t50000\n")
    assert ports.ephemeral_range(setting) == (40000, 50000)
    assert ports.ephemeral_range(tmp_path / "absent") == (32768, 60999)


def test_without_room_below_the_range_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_candidate(low: int) -> int:
        raise AssertionError(f"no room below {low}: nothing to pick there")

    monkeypatch.setattr(ports, "ephemeral_range", lambda: (1025, 65535))
    monkeypatch.setattr(ports, "_candidate", no_candidate)
    port = ports.free_port()
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_a_port_already_given_is_not_given_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """`up` picks every agent's metrics port before any of them listens: the same pick twice
    let two agents share one (CI saw sessionise crash on every restart, "address already
    in use", while preprocess answered its readiness probe in its place)."""
    first, second = _two_free_ports()
    picks = iter([first, first, second])
    monkeypatch.setattr(ports, "_candidate", lambda low: next(picks))
    monkeypatch.setattr(ports, "_given", set())
    assert ports.free_port() == first
    assert ports.free_port() == second


def test_ports_a_caller_names_are_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_free_ports()
    picks = iter([first, second])
    monkeypatch.setattr(ports, "_candidate", lambda low: next(picks))
    monkeypatch.setattr(ports, "_given", set())
    assert ports.free_port(avoid={first}) == second


def _two_free_ports() -> tuple[int, int]:
    free = (p for p in range(20_000, 32_000) if ports.bindable("127.0.0.1", p))
    return next(free), next(free)


def _self_connected_then_closed(port: int) -> None:
    """What a Kafka client retrying against a stopped broker can do when the broker's port
    is in the ephemeral range: take that port as its own and connect to itself (a client's
    socket sets no SO_REUSEADDR). Closed, it stays in TIME_WAIT for a minute."""
    with socket.socket() as client:
        client.bind(("127.0.0.1", port))
        client.connect(("127.0.0.1", port))
        assert client.getsockname() == client.getpeername()


def test_a_port_held_by_a_connection_to_itself_is_found_and_cannot_be_bound() -> None:
    port = free_port()
    assert not ports.self_connected(port)
    _self_connected_then_closed(port)
    assert ports.self_connected(port)
    # Even a server that sets SO_REUSEADDR (as Kafka's does) cannot listen there now.
    assert not ports.bindable("127.0.0.1", port, reuse_address=True)


def test_a_held_port_refuses_connections_and_is_given_to_no_client() -> None:
    """While a server is down, a hold keeps its port: a connection is refused (as when
    nothing listens), and no socket without SO_REUSEADDR, as a client's, can take it."""
    port = free_port()
    hold = ports.PortHold("127.0.0.1", port)
    try:
        assert hold.held
        with socket.socket() as client, pytest.raises(ConnectionRefusedError):
            client.connect(("127.0.0.1", port))
        with socket.socket() as client, pytest.raises(OSError, match="in use"):
            client.bind(("127.0.0.1", port))
    finally:
        hold.release()
    assert ports.bindable("127.0.0.1", port)
    assert not hold.held
    hold.release()  # twice is harmless


def test_a_hold_on_a_port_already_taken_holds_nothing() -> None:
    port = free_port()
    _self_connected_then_closed(port)
    hold = ports.PortHold("127.0.0.1", port)
    assert not hold.held
    hold.release()
