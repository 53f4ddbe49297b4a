"""Waiting for the schema registry before a batch that needs it.

A record of a writer schema the worker has not seen is decoded with that schema, fetched
from the registry by its id. With the registry away, the record is fine but cannot be read
yet: rejecting it would lose it, and failing the batch stopped the worker. So before a
batch is decoded, the writer schemas it needs are looked up, and while the registry does
not answer the batch waits (nothing of it has reached the step yet), retrying with
backoff, saying so once per ``LOG_EVERY_S`` and in the worker's readiness.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from streamlearn.runtime.faust_app import BatchingApp
from streamlearn.runtime.records import InputMessage, StepInputs
from streamlearn.serde import RegistryUnavailableError

log = logging.getLogger(__name__)

FIRST_RETRY_S = 0.5
MAX_RETRY_S = 5.0
LOG_EVERY_S = 30.0


async def look_up_writers(
    inputs: StepInputs,
    topic: str,
    messages: Sequence[InputMessage],
    app: BatchingApp,
) -> bool:
    """Until every writer schema of ``messages`` is known or ``app`` stops; True when
    they all are (the batch can be decoded), False if the worker is stopping. Meanwhile
    ``app.waiting_for`` says what for (the readiness probe shows it)."""
    unseen = inputs.unseen_writers(topic, messages)
    if not unseen:
        return True
    delay, waited = FIRST_RETRY_S, False
    logged_at: float | None = None
    for schema_id in unseen:
        while True:
            if app.should_stop:
                return False
            try:
                # In a thread: a registry that hangs must not stall the loop (heartbeats).
                await asyncio.to_thread(inputs.look_up_writer, topic, schema_id)
                break
            except RegistryUnavailableError as exc:
                app.waiting_for = f"the schema registry, for writer schema id {schema_id}"
                now = time.monotonic()
                if logged_at is None or now - logged_at >= LOG_EVERY_S:
                    log.warning(
                        "%s: waiting for the schema registry to read writer schema id %d "
                        "(nothing is skipped; retrying): %s",
                        topic, schema_id, exc,
                    )  # fmt: skip
                    logged_at = now
                waited = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_S)
    if waited:
        log.warning("%s: the schema registry answered; going on", topic)
    app.waiting_for = None
    return True
