"""Namespaces: one prefix for every topic, consumer group and table changelog.

The same agents can run side by side in two namespaces on one cluster, e.g. live and a
replay into shadow topics (``replay agents --into PREFIX``) or one per test: nothing of
one namespace is read or written by the other. The prefix is ``STREAMLEARN_TOPIC_PREFIX``.
Table changelogs are named by Faust after the consumer group (``<group>-<table>-changelog``),
so a namespaced group namespaces its changelogs too.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamlearn.topology.exceptions import TopologyError


@dataclass(frozen=True)
class Namespace:
    """A prefix applied to every name streamlearn gives Kafka."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if any(not (c.isascii() and (c.isalnum() or c in "._-")) for c in self.prefix):
            raise TopologyError(
                f"namespace prefix {self.prefix!r} may only hold letters, digits, '.', '_', '-'"
            )

    def topic(self, logical: str) -> str:
        """The Kafka name of topic ``logical`` (a name of topology/topics.yaml)."""
        return self.prefix + logical

    def group(self, name: str) -> str:
        """The Kafka name of consumer group ``name`` (also its tables' changelog prefix)."""
        return self.prefix + name

    def logical(self, name: str) -> str | None:
        """The topology name of Kafka topic ``name``, or None if it is not in this namespace."""
        return name[len(self.prefix) :] if name.startswith(self.prefix) else None
