"""Where archive files live and what their names say: pure functions, no I/O.

A final file is ``<topic>/date=YYYY-MM-DD/hour=HH/<topic>+<partition>+<first>-<last>.<ext>``
under the archive root, where ``topic`` is the Kafka name (namespace prefix included, so two
namespaces never share files), ``first`` and ``last`` are the offsets of the first and last
record in the file (inclusive; zero-padded to 10 digits so a listing sorts by offset), and
the hour is the file's time bucket (UTC). Kafka topic names only hold ``[A-Za-z0-9._-]``,
so ``+`` separates the parts without ambiguity.

The names are the archive's ledger: resuming reads nothing but them
(:func:`resume_points`), so a name must say everything needed to continue exactly after
the file, and must be a function of the records alone (the same records give the same
names, whichever worker writes them, so a second writer of the same range replaces a file
with an identical one instead of adding a copy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

HOUR_MS = 3_600_000
OFFSET_DIGITS = 10

Format = Literal["avro", "parquet"]
FORMATS: tuple[Format, ...] = ("avro", "parquet")
EXTENSIONS: dict[Format, str] = {"avro": "avro", "parquet": "parquet"}

PARTIAL_DIR = "_partial"
"""Directory of in-progress files under a local root (never a Kafka topic's directory:
the listing of a topic only looks under ``<root>/<topic>/``)."""
PARTIAL_SUFFIX = ".inprogress"

_TOPIC = r"[A-Za-z0-9._-]+"
_FILE = re.compile(
    rf"(?:^|/)(?P<topic>{_TOPIC})/date=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/hour=(?P<hour>\d{{2}})/"
    rf"(?P=topic)\+(?P<partition>\d+)\+(?P<first>\d+)-(?P<last>\d+)\.(?P<ext>avro|parquet)$"
)


def hour_bucket(timestamp_ms: int) -> int:
    """The start (epoch ms, UTC) of the hour holding ``timestamp_ms``."""
    return timestamp_ms - timestamp_ms % HOUR_MS


def bucket_directory(bucket_ms: int) -> str:
    """``date=YYYY-MM-DD/hour=HH`` of the hour starting at ``bucket_ms``."""
    start = datetime.fromtimestamp(bucket_ms / 1000, tz=UTC)
    return f"date={start:%Y-%m-%d}/hour={start:%H}"


@dataclass(frozen=True, slots=True, order=True)
class ArchiveFile:
    """One final archive file, as its path names it."""

    topic: str
    """The Kafka topic name (namespace prefix included)."""
    partition: int
    first_offset: int
    last_offset: int
    bucket_ms: int
    """Start of the file's hour bucket (epoch ms, UTC)."""
    format: Format

    def __post_init__(self) -> None:
        if not re.fullmatch(_TOPIC, self.topic):
            raise ValueError(f"not a Kafka topic name: {self.topic!r}")
        if self.partition < 0 or self.first_offset < 0 or self.last_offset < self.first_offset:
            raise ValueError(
                f"bad file range: partition {self.partition}, "
                f"offsets {self.first_offset}-{self.last_offset}"
            )
        if self.bucket_ms % HOUR_MS:
            raise ValueError(f"bucket {self.bucket_ms} is not the start of an hour")

    @property
    def name(self) -> str:
        """The file name (last path part)."""
        return (
            f"{self.topic}+{self.partition}+{self.first_offset:0{OFFSET_DIGITS}d}-"
            f"{self.last_offset:0{OFFSET_DIGITS}d}.{EXTENSIONS[self.format]}"
        )

    @property
    def path(self) -> str:
        """The path relative to the archive root."""
        return f"{self.topic}/{bucket_directory(self.bucket_ms)}/{self.name}"

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


def parse_path(path: str) -> ArchiveFile | None:
    """The file a path (relative to the root or not) names, or None when it is not a final
    archive file (an in-progress file, something else stored under the root)."""
    match = _FILE.search(path.replace("\\", "/"))
    if match is None:
        return None
    ext = match["ext"]
    try:
        date = datetime.strptime(f"{match['date']} {match['hour']}", "%Y-%m-%d %H")
        bucket_ms = int(date.replace(tzinfo=UTC).timestamp() * 1000)
        return ArchiveFile(
            topic=match["topic"],
            partition=int(match["partition"]),
            first_offset=int(match["first"]),
            last_offset=int(match["last"]),
            bucket_ms=bucket_ms,
            format="avro" if ext == "avro" else "parquet",
        )
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where a partition continues, read from its final files alone."""

    next_offset: int
    """The offset after the highest archived one."""
    bucket_ms: int
    """The partition's current time bucket: the newest bucket of its files. Buckets only
    move forward (see :mod:`streamlearn.archive.partition`), so a resumed partition puts
    a record of an earlier hour where the uninterrupted run put it."""


def resume_points(files: Iterable[ArchiveFile]) -> dict[tuple[str, int], ResumePoint]:
    """Per (topic, partition) with at least one final file: where to continue.

    The highest last offset, not the committed consumer offset: a worker killed after a
    file became final and before its offset was committed would otherwise archive the
    file's records a second time.
    """
    points: dict[tuple[str, int], ResumePoint] = {}
    for file in files:
        key = (file.topic, file.partition)
        known = points.get(key)
        if known is None:
            points[key] = ResumePoint(file.next_offset, file.bucket_ms)
        else:
            points[key] = ResumePoint(
                max(known.next_offset, file.next_offset), max(known.bucket_ms, file.bucket_ms)
            )
    return points


def overlaps(files: Iterable[ArchiveFile]) -> list[tuple[ArchiveFile, ArchiveFile]]:
    """Pairs of files of one partition whose offset ranges overlap (an archive written
    exactly once has none; ``archive ls`` reports them)."""
    found = []
    by_partition: dict[tuple[str, int], list[ArchiveFile]] = {}
    for file in files:
        by_partition.setdefault((file.topic, file.partition), []).append(file)
    for group in by_partition.values():
        group.sort(key=lambda f: (f.first_offset, -f.last_offset))
        widest = group[0]
        for after in group[1:]:
            if after.first_offset <= widest.last_offset:
                found.append((widest, after))
            if after.last_offset > widest.last_offset:
                widest = after
    return found
