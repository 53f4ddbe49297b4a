"""The embedded broker `up` starts: stopped by the kernel when `up` dies, however it dies;
and stopped for a while (``--chaos``) with its port held, then started again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from streamlearn.kafka_local import BrokerConfig, BrokerStartError, BrokerStatus, EmbeddedKafka
from streamlearn.ports import PortHold

HOLD_POLL_S = 0.01
"""How often the port of a broker stopping is tried until it is held."""


async def start_broker(broker: EmbeddedKafka, timeout_s: float) -> BrokerStatus:
    """Start the embedded broker so that it stops when `up` dies, however it dies.

    The JVM is launched from this thread, the one running the event loop (the main
    thread), which lives as long as `up`: the broker's parent-death signal is tied to the
    thread that forked it, not to the process. The slow parts run in threads."""
    current = await asyncio.to_thread(broker.status)
    if current.running:  # the user's own `kafka start`: used (and left running by `up`)
        return await asyncio.to_thread(broker.start, timeout_s)
    await asyncio.to_thread(broker.prepare)
    broker.launch(stop_with_parent=True)
    try:
        await asyncio.to_thread(broker.wait_ready, timeout_s)
    except BrokerStartError:
        await asyncio.to_thread(broker.stop)
        raise
    return await asyncio.to_thread(broker.status)


async def stop_holding_port(broker: EmbeddedKafka) -> PortHold:
    """Stop ``broker`` and hold its port from the moment it stops listening there.

    While the broker is down its clients retry. With the port in the ephemeral range one
    of them may be given that very port for its own end and connect to itself; its socket
    then keeps the port from the broker until the client gives up on it (its request
    timeout, a minute by default) and for a minute of TIME_WAIT after that. A held port
    cannot be given to a client, and refuses connections as if nothing were there. The
    port is tried every :data:`HOLD_POLL_S` while the broker stops (a socket cannot bind
    it while the broker listens). The hold may come back not held (a client was faster):
    :func:`start_holding_port` tries again."""
    stopping = asyncio.ensure_future(asyncio.to_thread(broker.stop))
    hold = await _held(broker, PortHold(broker.config.host, broker.config.port), stopping.done)
    await stopping
    return hold if hold.held else PortHold(broker.config.host, broker.config.port)


async def start_holding_port(
    broker: EmbeddedKafka, hold: PortHold, timeout_s: float, until: float
) -> BrokerStatus:
    """Start the stopped ``broker`` on the port ``hold`` holds, kept until the broker is up
    (Kafka's listener sets SO_REUSEADDR, as the hold does, so it listens beside a socket
    that is only bound, and no client can take the port in between). A port not held yet
    is tried every :data:`HOLD_POLL_S` until it is or the monotonic clock reaches
    ``until``; the hold is let go once the broker started or failed to."""
    hold = await _held(broker, hold, lambda: time.monotonic() >= until)
    try:
        return await start_broker(broker, timeout_s)
    finally:
        hold.release()


async def _held(broker: EmbeddedKafka, hold: PortHold, give_up: Callable[[], bool]) -> PortHold:
    """``hold``, or the broker's port tried again every :data:`HOLD_POLL_S` until it is
    held or ``give_up()``."""
    while not hold.held and not give_up():
        await asyncio.sleep(HOLD_POLL_S)
        hold = PortHold(broker.config.host, broker.config.port)
    return hold


def restart_hint(config: BrokerConfig, key_dir: Path | None = None) -> str:
    """How to bring back the broker `up` started and stopped, records and all: the replay
    commands read them (said when `up` stops it; a user of the quickstart did not know).
    ``key_dir``: the data directory holding the signing key `up` made, named when the
    broker's data is elsewhere than its ``kafka`` directory (``up --data-dir``)."""
    default_port = config.port == BrokerConfig.port
    options = "" if default_port else f" --port {config.port}"
    options += " --secure" if config.secure is not None else ""
    # Another port is the replay commands' to be told, as the registry's is; and so is
    # where the key is when `--data-dir` put the broker's data apart from it (the replay
    # commands find the key in STREAMLEARN_DATA_DIR, which that option does not set).
    told = [] if default_port else [f"STREAMLEARN_KAFKA_BOOTSTRAP={config.bootstrap}"]
    if key_dir is not None and config.data_dir != key_dir / "kafka":
        told.append(f"STREAMLEARN_DATA_DIR={key_dir} (its signing key is there)")
    with_ = f" with {' and '.join(told)}" if told else ""
    return (
        f"its records stay in {config.data_dir}: `streamlearn kafka start --data-dir "
        f"{config.data_dir}{options}` brings it back, then `streamlearn registry serve`, for "
        f"`streamlearn replay`{with_} (docs/replay.md)"
    )
