"""Archive retention: which final files are past it.

A file is past retention once its whole hour bucket ended more than the retention before
now. Each partition's newest file is kept whatever its age: the file names are the
archive's ledger, and the newest says where the partition continues
(:func:`~streamlearn.archive.layout.resume_points`); without it a worker would start the
partition again from the group's committed offset or from Kafka's oldest record.

Deleting moves the archive's start later: ``replay --source archive`` then reads from the
oldest file left (and from Kafka for what Kafka still has).
"""

from __future__ import annotations

from collections.abc import Iterable

from streamlearn.archive.layout import HOUR_MS, ArchiveFile


def past_retention(files: Iterable[ArchiveFile], cutoff_ms: int) -> list[ArchiveFile]:
    """The files whose hour ended at or before ``cutoff_ms`` (epoch ms), but the newest
    of each partition, sorted by path."""
    files = list(files)
    newest: dict[tuple[str, int], ArchiveFile] = {}
    for file in files:
        key = (file.topic, file.partition)
        kept = newest.get(key)
        if kept is None or file.last_offset > kept.last_offset:
            newest[key] = file
    return sorted(
        (
            file
            for file in files
            if file.bucket_ms + HOUR_MS <= cutoff_ms
            and newest[(file.topic, file.partition)] != file
        ),
        key=lambda f: f.path,
    )
