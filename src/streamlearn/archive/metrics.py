"""Prometheus metrics of the archive agent, in a registry owned by the agent (no globals).

Records are counted when the file holding them becomes final, so a record written into
an in-progress file that was then abandoned (revocation, lost partition, error) and
written again later is counted once per final file, that is once. Labels are topology names (without
the namespace prefix), as the agents' metrics.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from streamlearn.archive.partition import Completed
from streamlearn.process_metrics import part_registry


class ArchiveMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or part_registry()
        self.records = Counter(
            "streamlearn_archive_records",
            "Records in archive files made final, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.files = Counter(
            "streamlearn_archive_files",
            "Archive files made final, by topic and why they closed "
            "(hour, schema, records, bytes, idle).",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.bytes = Counter(
            "streamlearn_archive_bytes",
            "Bytes of archive files made final (as stored), by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.undecodable = Counter(
            "streamlearn_archive_undecodable_records",
            "Records archived as raw bytes because their value could not be decoded, "
            "by topic and reason.",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.late = Counter(
            "streamlearn_archive_late_records",
            "Records whose timestamp is in an earlier hour than their partition's bucket "
            "(archived in the current bucket, timestamp kept), by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.abandoned = Counter(
            "streamlearn_archive_abandoned_records",
            "Records of in-progress files deleted on revocation or an error (read again by the "
            "partition's next owner), by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.expired = Counter(
            "streamlearn_archive_expired_records",
            "Records that left Kafka (retention) before they were archived, by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.deleted = Counter(
            "streamlearn_archive_deleted_files",
            "Final files deleted past the archive's retention (--retention-hours), by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.partitions = Gauge(
            "streamlearn_archive_partitions",
            "Partitions this worker archives.",
            registry=self.registry,
        )

    def completed(self, topic: str, done: Completed) -> None:
        self.records.labels(topic).inc(done.records)
        self.files.labels(topic, done.reason.value).inc()
        self.bytes.labels(topic).inc(done.size)
        if done.late:
            self.late.labels(topic).inc(done.late)
        for reason, count in done.undecodable.items():
            self.undecodable.labels(topic, reason).inc(count)

    def value(self, counter: Counter | Gauge, **labels: str) -> float:
        """Current value of one labelled metric (for logs and tests)."""
        metric = counter.labels(**labels) if labels else counter
        return float(metric._value.get())
