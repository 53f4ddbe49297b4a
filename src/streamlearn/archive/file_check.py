"""The rows of one final archive file, checked against what its name promises.

A file's name is the archive's ledger: it says which offsets the file holds, and readers
choose files (and the replay's plan counts records) by it alone. An object cut short (a
partial copy or restore, a disk that lost the tail of a file) can still be readable: an
Avro container cut after its header or between two blocks reads as fewer rows without a
complaint, and the offsets it lost would be skipped by every reader without a word, since
the next file starts after them. So a file read to its end must reach the last offset its
name gives, and a file the format library cannot read is an error naming the file, not
the library's bare message (``cannot read header - is it an avro file?``, and a traceback).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.formats import read_rows
from streamlearn.archive.layout import ArchiveFile


def checked_rows(handle: IO[bytes], file: ArchiveFile, where: str) -> Iterator[dict[str, Any]]:
    """The rows of ``file`` (open as ``handle``; ``where`` names it for errors), raising
    :class:`ArchiveError` when it cannot be read or ends before its name's last offset."""
    # Read whole first, so that what fails afterwards is the bytes, never the store (whose
    # refusals keep their own one-line messages): fastavro, its codecs and pyarrow raise
    # anything from ValueError to cramjam's DecompressionError and OSError on damaged bytes.
    # A file is at most --max-file-bytes of records, compressed.
    data = io.BytesIO(handle.read())
    last_read: int | None = None
    try:
        for row in read_rows(data, file.format):
            last_read = row["offset"]
            yield row
    except Exception as error:
        raise ArchiveError(
            f"archive file {where} is damaged ({type(error).__name__}: {error}; read up to "
            f"{_read_up_to(last_read)}): restore it from a copy, or delete it to have "
            "replays read those offsets from Kafka while it still holds them"
        ) from error
    if last_read != file.last_offset:
        found = "no record" if last_read is None else f"offsets up to {last_read}"
        raise ArchiveError(
            f"archive file {where} is cut short: its name says it holds offsets "
            f"{file.first_offset}..{file.last_offset}, it holds {found} (a partial copy or "
            "restore?): restore it from a copy, or delete it to have replays read those "
            "offsets from Kafka while it still holds them"
        )


def _read_up_to(last_read: int | None) -> str:
    return "no record" if last_read is None else f"offset {last_read}"
