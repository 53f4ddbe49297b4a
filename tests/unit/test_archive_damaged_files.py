"""A damaged archive file (an object cut short by a partial copy or restore, or bytes
changed) is an error naming the file, never records left out without a word."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from streamlearn.archive import read_archive
from streamlearn.archive.decode import WriterDecoder
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.partition import Limits, PartitionArchiver
from streamlearn.archive.storage import ArchiveStore
from streamlearn.cli_errors import one_line_error
from streamlearn.serde import AvroSerde, InMemoryRegistry

TOPIC = "ns.training.examples"
START_MS = int(datetime(2026, 11, 30, 9, 0, tzinfo=UTC).timestamp() * 1000)
SCHEMA = {
    "type": "record",
    "name": "Row",
    "namespace": "test",
    "fields": [{"name": "n", "type": "long"}],
}


def _archive(root: Path, fmt: str, count: int = 15) -> list[Path]:
    """``count`` records of partition 0 in files of five; the files, by offset."""
    registry = InMemoryRegistry()
    serde = AvroSerde(registry, SCHEMA, f"{TOPIC}-value")
    archiver = PartitionArchiver(
        TOPIC,
        0,
        None,
        store=ArchiveStore(str(root)),
        decoder=WriterDecoder(registry),
        fmt=fmt,  # type: ignore[arg-type]
        limits=Limits(max_records=5),
    )
    archiver.add(
        [
            Message(
                topic=TOPIC,
                partition=0,
                offset=n,
                key=b"k",
                value=serde.encode({"n": n}),
                timestamp=(TIMESTAMP_CREATE_TIME, START_MS + n),
            )
            for n in range(count)
        ]
    )
    archiver.finish()
    return sorted(p for p in (root / TOPIC).rglob("*") if p.is_file())


def _avro_header_only(data: bytes) -> bytes:
    """The file up to its first sync marker: the header, without any block."""
    sync = data[-16:]  # every block ends with the header's sync marker
    return data[: data.index(sync) + 16]


def test_an_avro_file_cut_after_its_header_is_an_error_not_a_gap(tmp_path: Path) -> None:
    files = _archive(tmp_path, "avro")
    files[1].write_bytes(_avro_header_only(files[1].read_bytes()))
    with pytest.raises(
        ArchiveError, match=r"\+0000000005-0000000009\.avro is cut short.* offsets 5\.\.9"
    ):
        list(read_archive(str(tmp_path), TOPIC))
    # A range that ends before the damaged file does not open it.
    assert [r.offset for r in read_archive(str(tmp_path), TOPIC, end_offsets={0: 5})] == [
        0,
        1,
        2,
        3,
        4,
    ]


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
@pytest.mark.parametrize("damage", ["half", "garbage", "empty", "flipped"])
def test_a_damaged_file_is_one_line_naming_it(tmp_path: Path, fmt: str, damage: str) -> None:
    files = _archive(tmp_path, fmt)
    data = files[1].read_bytes()
    damaged = {
        "half": data[: len(data) // 2],
        "garbage": b"garbage" * 10,
        "empty": b"",
        "flipped": data[:-40] + bytes(b ^ 0xFF for b in data[-40:-30]) + data[-30:],
    }[damage]
    files[1].write_bytes(damaged)
    with pytest.raises(ArchiveError) as raised:
        list(read_archive(str(tmp_path), TOPIC))
    line = one_line_error(raised.value)
    assert line is not None
    assert files[1].name in line
