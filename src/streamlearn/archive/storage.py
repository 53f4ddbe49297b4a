"""Where archive files go: a local directory or S3-compatible object storage (fsspec).

A file becomes final in one step that either happens whole or not at all, and only then
is it visible under the root:

- **local root**: in-progress files are written under ``<root>/_partial/`` (the same file
  system), fsynced, then renamed into place with ``os.replace`` (atomic), and the
  directory is fsynced so the rename survives a power cut too;
- **object storage** (``s3://bucket/prefix``, or any fsspec URL): in-progress files are
  written in a local staging directory and uploaded to the final key on completion. A PUT
  (or a multipart upload's completion) makes the object visible whole or not at all; an
  upload interrupted by a crash leaves no object (S3 keeps the parts of an unfinished
  multipart upload out of sight until a lifecycle rule aborts them).

Listing a topic's final files is the only state the agent reads when it takes a
partition (:func:`~streamlearn.archive.layout.resume_points`); fsspec's listing cache is
dropped before each listing, since another worker may have added files since.

Credentials are never logged: :meth:`ArchiveStore.describe` names the root without any
user information, and storage options (keys, endpoint) are only handed to fsspec.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import fsspec
from fsspec.implementations.local import LocalFileSystem

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import (
    EXTENSIONS,
    OFFSET_DIGITS,
    PARTIAL_DIR,
    PARTIAL_SUFFIX,
    ArchiveFile,
    Format,
    parse_path,
)

log = logging.getLogger(__name__)


def describe_root(root: str) -> str:
    """``root`` without user information (``s3://key:secret@bucket`` → ``s3://bucket``)."""
    parts = urlsplit(root)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return root


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


SUPPORTED_PROTOCOLS = frozenset({"file", "local", "s3", "s3a", "memory"})
"""Where the archive is known to work: a local directory, S3's API (tested against a real
S3 server), fsspec's in-memory file system (tests). Other fsspec URLs (ftp://, gs://) were
taken and failed later, e.g. resolving ftp://x's host."""


class ArchiveStore:
    """The archive root: final files, and the in-progress files of this process."""

    def __init__(
        self,
        root: str,
        *,
        storage_options: dict[str, Any] | None = None,
        staging_dir: Path | None = None,
    ) -> None:
        self.root = root
        # Before the file system is made: some connect when made (ftp://x resolved x).
        if (fsspec.core.split_protocol(root)[0] or "file") not in SUPPORTED_PROTOCOLS:
            raise ArchiveError(
                f"archive root {describe_root(root)}: a local directory or s3://bucket/prefix"
            )
        try:
            self.fs, path = fsspec.core.url_to_fs(root, **(storage_options or {}))
        except (ImportError, ValueError) as exc:
            raise ArchiveError(f"archive root {describe_root(root)}: {exc}") from exc
        self.base = path.rstrip("/") or "/"
        self.is_local = isinstance(self.fs, LocalFileSystem)
        self._sizes: dict[str, int] = {}
        """Bytes of the final files listed (path relative to the root → size): the listing
        gives them, so asking each file (a HEAD per file on S3) is not needed."""
        self._staging: Path | None = staging_dir
        if self.is_local:
            if Path(self.base).is_file():
                raise ArchiveError(f"archive root {self.describe()}: a file, not a directory")
            self._staging = Path(self.base) / PARTIAL_DIR

    def require_root(self) -> None:
        """Refuse a root that is not there: a bucket that does not exist (or a local
        directory, for readers) lists as an empty archive, and a replay would read Kafka
        alone without a word. The bucket's check is one request (HeadBucket)."""
        if self.is_local:
            if not Path(self.base).is_dir():
                raise ArchiveError(f"archive root {self.describe()}: no such directory")
            return
        bucket = self.base.split("/", 1)[0]
        try:
            self.fs.call_s3("head_bucket", Bucket=bucket)
        except FileNotFoundError:
            raise ArchiveError(
                f"S3: no bucket {bucket} at {self.describe()}'s endpoint (create it, or check "
                "the root and --s3-endpoint-url)"
            ) from None

    def make_root(self) -> None:
        """Make a local root's directory (an object store's bucket is not made)."""
        if self.is_local:
            Path(self.base).mkdir(parents=True, exist_ok=True)

    def _nothing_listed(self) -> None:
        """A listing found nothing: with S3, because the bucket is missing? (Raises.)"""
        if not self.is_local:
            self.require_root()

    @property
    def staging(self) -> Path:
        """The local directory of this root's in-progress files."""
        if self._staging is None:
            raise ArchiveError(
                f"archive root {self.describe()} is not local: in-progress files need a "
                "local staging directory"
            )
        return self._staging

    def describe(self) -> str:
        return describe_root(self.root)

    def _remote(self, relative: str) -> str:
        return f"{self.base}/{relative}" if self.base != "/" else f"/{relative}"

    def list_files(self, topic: str) -> list[ArchiveFile]:
        """Every final file of ``topic`` (Kafka name), sorted by partition and offsets."""
        prefix = self._remote(topic)
        # All of it: s3fs drops a path's own listing but keeps its subdirectories'.
        self.fs.invalidate_cache()
        try:
            found: dict[str, dict[str, Any]] = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            self._nothing_listed()
            return []
        files = []
        base = self.base.rstrip("/") + "/"
        # The topic's sizes as this listing has them (files gone since are forgotten).
        self._sizes = {k: v for k, v in self._sizes.items() if not k.startswith(f"{topic}/")}
        for path, info in found.items():
            relative = path[len(base) :] if path.startswith(base) else path
            parsed = parse_path(relative)
            if parsed is not None and parsed.topic == topic and relative == parsed.path:
                files.append(parsed)
                if isinstance(info.get("size"), int):
                    self._sizes[relative] = info["size"]
        return sorted(files, key=lambda f: (f.partition, f.first_offset, f.last_offset))

    def list_topics(self) -> list[str]:
        """Topics with a directory under the root."""
        self.fs.invalidate_cache()
        try:
            entries = self.fs.ls(self.base, detail=False)
        except FileNotFoundError:
            self._nothing_listed()
            return []
        names = (str(entry).rstrip("/").rsplit("/", 1)[-1] for entry in entries)
        return sorted(name for name in names if name != PARTIAL_DIR)

    def size(self, file: ArchiveFile) -> int:
        """Bytes of a final file: as listed, else asked."""
        listed = self._sizes.get(file.path)
        return listed if listed is not None else int(self.fs.size(self._remote(file.path)))

    @contextmanager
    def open(self, file: ArchiveFile) -> Iterator[IO[bytes]]:
        """A final file, for reading."""
        with self.fs.open(self._remote(file.path), "rb") as handle:
            yield handle

    def delete(self, file: ArchiveFile) -> None:
        """Delete a final file (one already gone is no error: two workers may expire the
        same); on a local root, its hour and date directories too once they are empty."""
        with suppress(FileNotFoundError):
            self.fs.rm_file(self._remote(file.path))
        self._sizes.pop(file.path, None)
        if self.is_local:
            hour = (Path(self.base) / file.path).parent
            for directory in (hour, hour.parent):
                try:
                    directory.rmdir()
                except OSError:  # not empty (or gone)
                    break

    def read_topic_file(self, topic: str, name: str) -> bytes | None:
        """A small object of ``topic``'s directory (such as its topic id marker), or None
        when there is none."""
        self.fs.invalidate_cache()
        try:
            data: bytes = self.fs.cat_file(self._remote(f"{topic}/{name}"))
        except FileNotFoundError:
            return None
        return data

    def write_topic_file(self, topic: str, name: str, data: bytes) -> None:
        """Write a small object of ``topic``'s directory whole or not at all: a local root
        writes a temporary file beside it, fsyncs it and renames it into place (then
        fsyncs the directory); object storage's PUT is whole or nothing already."""
        if not self.is_local:
            self.fs.pipe_file(self._remote(f"{topic}/{name}"), data)
            return
        folder = Path(self.base) / topic
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / name)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(folder)

    def partial_path(self, topic: str, partition: int, first_offset: int, fmt: Format) -> Path:
        """A fresh in-progress path for a file starting at ``first_offset``. The random
        part keeps two writers of one partition (a worker that lost it and does not know
        yet, and its new owner) from writing into one file."""
        token = uuid.uuid4().hex[:8]
        name = f"{first_offset:0{OFFSET_DIGITS}d}-{token}.{EXTENSIONS[fmt]}{PARTIAL_SUFFIX}"
        return self.staging / topic / str(partition) / name

    def discard_partials(self, topic: str, partition: int) -> int:
        """Delete the in-progress files of a partition (left by a worker that died, or
        that lost the partition): the final files say where to continue, and the records
        of these are read again. Returns how many were deleted."""
        folder = self.staging / topic / str(partition)
        removed = 0
        if folder.is_dir():
            for stale in folder.iterdir():
                if stale.name.endswith(PARTIAL_SUFFIX):
                    stale.unlink(missing_ok=True)
                    removed += 1
        return removed

    def publish(self, partial: Path, file: ArchiveFile) -> None:
        """Make a finished in-progress file final as ``file`` (see the module doc)."""
        if self.is_local:
            target = Path(self.base) / file.path
            created = not target.parent.is_dir()
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, target)
            _fsync_directory(target.parent)
            if created:
                for directory in (target.parent.parent, target.parent.parent.parent):
                    _fsync_directory(directory)
            return
        self.fs.put_file(str(partial), self._remote(file.path))
        partial.unlink(missing_ok=True)
