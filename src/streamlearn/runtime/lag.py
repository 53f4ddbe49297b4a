"""Per-partition position and lag of a worker's inputs, for Prometheus.

A partition the consumer stopped reading leaves every other figure of a worker normal: it
is ready, its loop beats, its other partitions flow. What shows it is the partition's own
position standing still while records wait after it (``docs/reliability.md``: one such
stall lasted minutes). The consumer's view (:meth:`BatchConsumer.partition_lags`) is read
on the app's loop every :data:`REFRESH_S` and exported at scrape time from that copy: the
metrics endpoint runs in its own thread, which must not walk the consumer's state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from faust.types import TP
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streamlearn.topology.namespace import Namespace

REFRESH_S = 5.0


class LagSource(Protocol):
    def partition_lags(self) -> Mapping[TP, tuple[int, int]]: ...


class PartitionLag(Collector):
    """``streamlearn_agent_partition_position`` and ``streamlearn_agent_partition_lag``,
    per input topic (its topology name) and partition; partitions no longer assigned
    disappear at the next refresh."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self._rows: tuple[tuple[str, str, int, int], ...] = ()

    def refresh(self, consumer: LagSource) -> None:
        """Copy the consumer's view (on the app's loop); one assignment, so a scrape
        sees one refresh whole."""
        rows = []
        for tp, (position, lag) in sorted(consumer.partition_lags().items()):
            topic = self.namespace.logical(tp.topic) or tp.topic
            rows.append((topic, str(tp.partition), position, lag))
        self._rows = tuple(rows)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self._rows
        position = GaugeMetricFamily(
            "streamlearn_agent_partition_position",
            "Offset of the next record a worker hands its agent, per input partition.",
            labels=["topic", "partition"],
        )
        lag = GaugeMetricFamily(
            "streamlearn_agent_partition_lag",
            "Records after the position, up to the end offset the worker's last fetch saw.",
            labels=["topic", "partition"],
        )
        for topic, partition, at, behind in rows:
            position.add_metric([topic, partition], at)
            lag.add_metric([topic, partition], behind)
        yield position
        yield lag
