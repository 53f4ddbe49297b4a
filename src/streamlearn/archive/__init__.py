"""The archive agent: selected topics written to time-bucketed files, exactly once.

``streamlearn archive run`` (:mod:`streamlearn.cli_archive`) runs :class:`ArchiveAgent`;
:func:`read_archive` reads the files back in (partition, offset) order. How files are
named and cut, and why a restart at any point neither loses nor repeats a record, is in
``docs/archive.md``. Modules, one job each: ``layout`` (names, buckets, resume points),
``envelope`` (the row schema), ``decode`` (writer-schema decoding), ``arrow`` (Avro →
Arrow types), ``formats`` (Avro and Parquet files), ``storage`` (local or fsspec root),
``partition`` (one partition's file cutting), ``agent`` (the consumer), ``metrics``,
``health`` (probes), ``reader``.

The package's names load their module when first used: ``streamlearn.archive.exceptions``
is imported by every command line, which would otherwise load pyarrow and the registry
client (half a second of each command's start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlearn.lazy_names import lazy_names

if TYPE_CHECKING:
    from streamlearn.archive.agent import ArchiveAgent
    from streamlearn.archive.config import DEFAULT_GROUP, ArchiveConfig
    from streamlearn.archive.exceptions import ArchiveError
    from streamlearn.archive.layout import ArchiveFile, ResumePoint, resume_points
    from streamlearn.archive.metrics import ArchiveMetrics
    from streamlearn.archive.partition import CloseReason, Limits
    from streamlearn.archive.reader import ArchivedRecord, list_archive, read_archive
    from streamlearn.archive.topics import DEFAULT_TOPICS

_HOMES = {
    "ArchiveAgent": "agent",
    "DEFAULT_GROUP": "config",
    "ArchiveConfig": "config",
    "ArchiveError": "exceptions",
    "ArchiveFile": "layout",
    "ResumePoint": "layout",
    "resume_points": "layout",
    "ArchiveMetrics": "metrics",
    "CloseReason": "partition",
    "Limits": "partition",
    "ArchivedRecord": "reader",
    "list_archive": "reader",
    "read_archive": "reader",
    "DEFAULT_TOPICS": "topics",
}


__getattr__ = lazy_names(__name__, _HOMES, globals())


__all__ = [
    "DEFAULT_GROUP",
    "DEFAULT_TOPICS",
    "ArchiveAgent",
    "ArchiveConfig",
    "ArchiveError",
    "ArchiveFile",
    "ArchiveMetrics",
    "ArchivedRecord",
    "CloseReason",
    "Limits",
    "ResumePoint",
    "list_archive",
    "read_archive",
    "resume_points",
]
