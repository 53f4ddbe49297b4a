"""The embedded broker `up` starts: stopped by the kernel when `up` dies, however it dies."""

from __future__ import annotations

import asyncio

from streamlearn.kafka_local import BrokerStartError, BrokerStatus, EmbeddedKafka


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
