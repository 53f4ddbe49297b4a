"""The guard on the private members of Faust that :mod:`.faust_internals` uses.

Private members change without notice between Faust releases: each one used is listed
here, as a name, and checked on the installed faust-streaming (the methods on the classes
when an app is built; the attributes on the live objects when first used), so an upgrade
that changes one fails with a message naming it instead of misbehaving. The names are
strings: this module touches no private member itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

from faust.transport.consumer import Consumer as FaustConsumer
from faust.transport.drivers import aiokafka as faust_aiokafka

from streamlearn.runtime.exceptions import FaustMismatchError

FAUST_METHODS: tuple[tuple[type, str, str], ...] = (
    (FaustConsumer, "_drain_messages", "coroutine(self, fetcher)"),
    (FaustConsumer, "_wait_next_records", "coroutine(self, timeout)"),
    (FaustConsumer, "_to_message", "method(self, tp, record)"),
    (FaustConsumer, "_add_gap", "coroutine(self, tp, offset_from, offset_to)"),
    (FaustConsumer, "_seek", "coroutine(self, partition, offset)"),
    (faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", "method(self)"),
    (faust_aiokafka.Producer, "_ensure_producer", "method(self)"),
)
"""(owner, private method, kind and parameters) used by faust_internals."""

FAUST_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "consumer": (
        "_read_offset",
        "_committed_offset",
        "_acked",
        "_acked_index",
        "_n_acked",
        "_commit_every",
        "_buffered_partitions",
        "_waiting_for_ack",
        "_stopped",
    ),
    "fetcher": ("_stopped",),
    "started consumer": ("_thread",),
    "aiokafka consumer": ("_fetcher",),
    "aiokafka fetcher": ("_fetch_max_wait_ms", "_fetch_min_bytes"),
}
"""Private instance attributes faust_internals uses, by the object that holds them."""


def _parameters(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def method_problems(methods: Iterable[tuple[type, str, str]] = FAUST_METHODS) -> list[str]:
    """What is missing or changed of the private methods faust_internals uses."""
    problems: list[str] = []
    for owner, member, kind in methods:
        found = getattr(owner, member, None)
        name = f"{owner.__name__}.{member}"
        if found is None:
            problems.append(f"{name} is missing")
            continue
        if kind.startswith("coroutine") and not inspect.iscoroutinefunction(found):
            problems.append(f"{name} is no longer a coroutine")
        expected = kind[kind.index("(") + 1 : -1].split(", ")
        if _parameters(found) != expected:
            problems.append(f"{name} takes {_parameters(found)}, expected {expected}")
    return problems


def attribute_problems(holder: str, instance: object) -> list[str]:
    """What is missing of the private attributes it uses on a live ``holder``."""
    return [
        f"{type(instance).__name__} instances have no {name}"
        for name in FAUST_ATTRIBUTES[holder]
        if not hasattr(instance, name)
    ]


def raise_if(problems: list[str]) -> None:
    if problems:
        raise FaustMismatchError(
            "streamlearn's runtime does not match this faust-streaming version: "
            + "; ".join(problems)
        )


def check_faust_methods() -> None:
    """Fail with a clear message if a private method it uses is missing or changed."""
    raise_if(method_problems())
