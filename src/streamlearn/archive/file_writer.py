"""What every archive file writer is: the protocol, and how a finished file is made durable."""

from __future__ import annotations

import os
from typing import IO, Any, Protocol

Headers = list[tuple[str, bytes | None]] | None


class FileWriter(Protocol):
    """One in-progress archive file."""

    def append(
        self,
        offset: int,
        timestamp: int | None,
        timestamp_type: int,
        key: bytes | None,
        headers: Headers,
        value: Any,
        raw: bytes | None,
        error: str | None,
        detail: str | None,
        body: bytes | memoryview | None = None,
    ) -> None:
        """Add one record (``value`` as :class:`~streamlearn.archive.decode.WriterDecoder`
        gives it; ``timestamp_type`` as confluent-kafka's ``TIMESTAMP_*``). ``body``: the
        Avro body ``value`` was decoded from (the record's value after the wire-format
        header), which a writer may copy instead of encoding ``value`` again."""
        ...

    def finish(self) -> int:
        """Write everything, fsync and close; the file's size in bytes."""
        ...

    def discard(self) -> None:
        """Close and delete the file."""
        ...


def fsync_close(file: IO[bytes]) -> int:
    """Flush, fsync and close ``file``; its size in bytes."""
    file.flush()
    os.fsync(file.fileno())
    size = file.tell()
    file.close()
    return size
