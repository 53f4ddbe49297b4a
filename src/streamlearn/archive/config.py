"""The archive agent's options (command-line options; none of them is a setting yet)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from streamlearn.archive.formats import check_compression
from streamlearn.archive.layout import Format
from streamlearn.archive.partition import Limits
from streamlearn.archive.storage import describe_root
from streamlearn.archive.topics import DEFAULT_TOPICS
from streamlearn.settings import Settings

DEFAULT_GROUP = "streamlearn-archive"
StartAt = Literal["earliest", "latest"]


def default_root(settings: Settings) -> str:
    """The ``archive_root`` setting, else ``$STREAMLEARN_DATA_DIR/archive``."""
    return settings.archive_root or str(settings.data_dir / "archive")


def default_staging_dir(settings: Settings, root: str, group: str) -> Path:
    """Where in-progress files wait for their upload when the root is object storage: a
    directory per root and consumer group (``<group>-<hash of the root>``; the root's
    text may hold credentials). A worker that takes a partition deletes the in-progress
    files it finds there as a dead worker's: archivers of other roots or groups on one
    machine must not find each other's."""
    digest = hashlib.sha256(root.encode()).hexdigest()[:12]
    safe_group = re.sub(r"[^A-Za-z0-9._-]", "_", group)
    return settings.data_dir / "archive-staging" / f"{safe_group}-{digest}"


@dataclass(frozen=True)
class ArchiveConfig:
    root: str
    """A local directory or an fsspec URL (``s3://bucket/prefix``)."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    """Topology names or patterns (see :func:`~streamlearn.archive.topics.select_topics`)."""
    format: Format = "avro"
    compression: str | None = None
    """fastavro codec or Parquet compression; None: snappy."""
    group: str = DEFAULT_GROUP
    """Consumer group, before the namespace prefix."""
    limits: Limits = field(default_factory=Limits)
    staging_dir: Path | None = None
    """Local directory of in-progress files when ``root`` is not local."""
    storage_options: dict[str, Any] = field(default_factory=dict)
    """fsspec options (e.g. s3fs' ``endpoint_url``, ``key``, ``secret``); never logged."""
    start_at: StartAt = "earliest"
    """Where a partition without any archived file starts: the oldest record Kafka still
    has, or records produced from now on."""
    batch_size: int = 2000
    """Most records taken from the consumer at once."""
    retention_hours: float | None = None
    """Files whose hour ended longer ago than this are deleted, but each partition's newest
    (:mod:`streamlearn.archive.retention`); None: kept for good."""
    retention_every_s: float = 600.0
    """How often a worker deletes what passed the retention, for the partitions it owns."""

    def __post_init__(self) -> None:
        check_compression(self.format, self.compression)

    def __repr__(self) -> str:
        # storage_options may hold credentials: never in a repr, a log or a traceback.
        shown = {k: v for k, v in self.__dict__.items() if k != "storage_options"}
        shown["root"] = describe_root(self.root)
        return f"ArchiveConfig({shown}, storage_options=<{len(self.storage_options)} keys>)"
