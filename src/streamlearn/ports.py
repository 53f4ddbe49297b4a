"""Free ports for the servers streamlearn starts (an embedded broker's controller, the
agents' metrics in `up`, and the tests' servers).

``bind(port 0)`` returns an *ephemeral* port: the range the kernel also hands to every
outgoing connection. A port chosen that way and listened on by another process seconds
later may meanwhile be the local end of some client's connection (a part's Kafka
connection, say), and the server then fails with "address already in use". Ports are
picked below that range instead, where only servers that ask for a port land, and checked
free by binding them.

A port is free until its server listens, which may be seconds later: `up` picks every
agent's metrics port before the first agent starts. So a process never hands out the same
port twice, nor one its caller says is meant for another server (``avoid``).
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Collection
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_RANGE = (32768, 60999)  # Linux's default
LOWEST = 10_000
"""Below this, ports are well known or registered often enough to be worth avoiding."""
ATTEMPTS = 100
_given: set[int] = set()
"""Ports this process handed out (their servers may not listen yet)."""


def ephemeral_range(setting: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's range of ports for outgoing connections."""
    try:
        low, high = (int(part) for part in setting.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_RANGE
    return low, high


def _candidate(low: int) -> int:
    return random.randrange(LOWEST, low)  # noqa: S311 (spreads picks; not a secret)


def bindable(host: str, port: int, *, reuse_address: bool = False) -> bool:
    """Whether a socket could bind ``port`` on ``host`` now (``reuse_address``: as servers
    that set SO_REUSEADDR do, for which a port in TIME_WAIT is free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if reuse_address:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(
    host: str = "127.0.0.1", avoid: Collection[int] = (), within: tuple[int, int] | None = None
) -> int:
    """A port nothing holds on ``host``, outside the ephemeral range when there is room,
    neither given before by this process nor in ``avoid``; ``within`` (LOW, HIGH), the
    ``STREAMLEARN_PORT_RANGE`` setting: from those ports only (OSError when none is free)."""
    if within is not None:
        ports = list(range(within[0], within[1] + 1))
        random.shuffle(ports)  # spreads picks of several processes, as below
        for port in ports:
            if port not in _given and port not in avoid and bindable(host, port):
                _given.add(port)
                return port
        raise OSError(
            errno.EADDRINUSE,
            f"no free port in {within[0]}-{within[1]} (STREAMLEARN_PORT_RANGE) on {host}",
        )
    low, _ = ephemeral_range()
    if low - LOWEST >= ATTEMPTS:
        for _ in range(ATTEMPTS):
            port = _candidate(low)
            if port not in _given and port not in avoid and bindable(host, port):
                _given.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))  # no room below the range: the kernel's choice
        return int(probe.getsockname()[1])


TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def self_connected(port: int, tables: Collection[Path] = TCP_TABLES) -> bool:
    """Whether a TCP socket of this machine has ``port`` at both of its ends.

    A client retrying a server that is down, whose port lies in the ephemeral range, can be
    given that very port for its own end and connect to itself. Its socket (without
    SO_REUSEADDR, as clients' are) then keeps the server from listening there, even with
    SO_REUSEADDR, while it is open and for a minute in TIME_WAIT. Read from the kernel's
    tables (Linux); False where they cannot be read."""
    wanted = f":{port:04X}"
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 2 and fields[1] == fields[2] and fields[1].endswith(wanted):
                return True
    return False


class PortHold:
    """``port`` on ``host`` bound without listening, while its server is down.

    A connection to it is refused, as when nothing is bound there, but the kernel gives a
    bound port to no outgoing connection: no client of the server, retrying meanwhile, can
    connect to itself on it (:func:`self_connected`). Bound with SO_REUSEADDR, over the
    server's own connections in TIME_WAIT; :attr:`held` is False when the port could not be
    bound (taken already)."""

    def __init__(self, host: str, port: int) -> None:
        self._socket: socket.socket | None = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self.release()

    @property
    def held(self) -> bool:
        return self._socket is not None

    def release(self) -> None:
        """Let the port go (for its server to listen there)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
