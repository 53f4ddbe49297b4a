"""Saying that a worker waits for Kafka while its start blocks on it.

An agents worker reads each topic's partition count before it runs (a metadata request
that waits up to 30 s for an answer). With a well-formed but unreachable bootstrap,
`streamlearn agents run` printed nothing for 32 s, then `Kafka: Failed to get metadata`
without the address it had tried. :func:`saying_while_waiting_for_kafka` says, soon after
a call starts to wait, which broker it waits for and which setting names it, then again
every ``every_s`` with how long so far; and an error of a broker that never answered names
the broker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from confluent_kafka import KafkaError, KafkaException

from streamlearn.exceptions import StreamlearnError

FIRST_AFTER_S = 2.0
"""A broker that answers does within milliseconds: a wait this long is worth a line."""
EVERY_S = 10.0
"""How often a wait that goes on is said again (bounded: a line per period)."""
SETTING = "STREAMLEARN_KAFKA_BOOTSTRAP or --bootstrap-servers"
UNANSWERED = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
    }
)
"""The client's codes for a broker that did not answer (a refusal is an answer)."""


def _unanswered(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in UNANSWERED


def kafka_error_said(exc: KafkaException, bootstrap: str) -> str:
    """A client error in an operator's words: the client's text (not ``KafkaError{...}``,
    its repr), after the broker's address when the broker did not answer."""
    error = exc.args[0] if exc.args else exc
    text = error.str() if isinstance(error, KafkaError) else str(error)
    return f"Kafka at {bootstrap} does not answer: {text}" if _unanswered(exc) else text


@contextmanager
def saying_while_waiting_for_kafka(
    bootstrap: str,
    say: Callable[[str], None],
    *,
    first_after_s: float = FIRST_AFTER_S,
    every_s: float = EVERY_S,
) -> Iterator[None]:
    """While the block runs: after ``first_after_s`` say that it waits for Kafka at
    ``bootstrap``, then every ``every_s``; a client error of a broker that did not answer
    leaves it as a :class:`StreamlearnError` naming ``bootstrap``."""
    done = threading.Event()
    started = time.monotonic()

    def tell() -> None:
        if done.wait(first_after_s):
            return
        say(f"waiting for Kafka at {bootstrap} ({SETTING} sets it)")
        while not done.wait(every_s):
            say(
                f"still waiting for Kafka at {bootstrap} "
                f"({time.monotonic() - started:.0f}s so far; {SETTING} sets it)"
            )

    teller = threading.Thread(target=tell, name="kafka-wait", daemon=True)
    teller.start()
    try:
        yield
    except KafkaException as exc:
        if not _unanswered(exc):
            raise
        reason = exc.args[0].str()
        raise StreamlearnError(
            f"Kafka at {bootstrap} did not answer within {time.monotonic() - started:.0f}s: "
            f"{reason} (is the broker running, and {SETTING} its address?)"
        ) from exc
    finally:
        done.set()
        teller.join()
