"""Archive file names, hour buckets, resume points: pure functions, no broker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streamlearn.archive.layout import (
    HOUR_MS,
    ArchiveFile,
    ResumePoint,
    bucket_directory,
    hour_bucket,
    overlaps,
    parse_path,
    resume_points,
)


def _ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def test_hour_bucket_is_the_start_of_the_utc_hour() -> None:
    assert hour_bucket(_ms(2026, 11, 30, 13, 59, 59, 999_000) + 0) == _ms(2026, 11, 30, 13)
    assert hour_bucket(_ms(2026, 11, 30, 14)) == _ms(2026, 11, 30, 14)
    assert hour_bucket(_ms(2026, 11, 30, 14) - 1) == _ms(2026, 11, 30, 13)
    assert hour_bucket(0) == 0
    assert hour_bucket(-1) == -HOUR_MS  # before 1970: still the hour's start, not 0


def test_bucket_directory_names_date_and_hour() -> None:
    assert bucket_directory(_ms(2026, 1, 2, 3)) == "date=2026-01-02/hour=03"
    assert bucket_directory(0) == "date=1970-01-01/hour=00"


def test_file_path_carries_topic_partition_and_offsets() -> None:
    file = ArchiveFile("ns.events.clean", 3, 100, 149, _ms(2026, 11, 30, 23), "avro")
    assert file.path == (
        "ns.events.clean/date=2026-11-30/hour=23/ns.events.clean+3+0000000100-0000000149.avro"
    )
    assert file.next_offset == 150


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_parse_path_inverts_path(fmt: str) -> None:
    file = ArchiveFile("telemetry.events", 5, 0, 12_345_678_901, _ms(2026, 2, 28, 7), fmt)  # type: ignore[arg-type]
    assert parse_path(file.path) == file
    assert parse_path("some/prefix/" + file.path) == file


@pytest.mark.parametrize(
    "path",
    [
        "_partial/t/0/0000000001-abcd1234.avro.inprogress",
        "t/date=2026-11-30/hour=01/t+0+1-2.avro.inprogress",
        "t/date=2026-11-30/hour=01/other+0+1-2.avro",  # name of another topic
        "t/date=2026-11-30/hour=01/t+0+5-2.avro",  # last before first
        "t/date=2026-11-30/hour=24/t+0+1-2.avro",
        "t/date=2026-11-30/t+0+1-2.avro",
        "t/date=2026-11-30/hour=01/t+0+1-2.json",
    ],
)
def test_parse_path_ignores_what_is_not_a_final_file(path: str) -> None:
    assert parse_path(path) is None


def test_resume_points_follow_the_highest_archived_offset() -> None:
    h10, h11 = _ms(2026, 11, 30, 10), _ms(2026, 11, 30, 11)
    files = [
        ArchiveFile("t", 0, 0, 99, h10, "avro"),
        ArchiveFile("t", 0, 100, 180, h11, "avro"),
        ArchiveFile("t", 1, 0, 9, h10, "parquet"),
        ArchiveFile("u", 0, 0, 4, h11, "avro"),
    ]
    assert resume_points(reversed(files)) == {
        ("t", 0): ResumePoint(181, h11),
        ("t", 1): ResumePoint(10, h10),
        ("u", 0): ResumePoint(5, h11),
    }
    assert resume_points([]) == {}


def test_overlaps_finds_ranges_written_twice() -> None:
    h = _ms(2026, 11, 30, 10)
    clean = [ArchiveFile("t", 0, 0, 9, h, "avro"), ArchiveFile("t", 0, 10, 19, h, "avro")]
    assert overlaps(clean) == []
    wide = ArchiveFile("t", 0, 0, 30, h, "avro")
    found = overlaps([*clean, wide, ArchiveFile("t", 1, 0, 30, h, "avro")])
    assert {(a.first_offset, b.first_offset) for a, b in found} == {(0, 0), (0, 10)}


def test_archive_file_refuses_impossible_names() -> None:
    with pytest.raises(ValueError, match="topic"):
        ArchiveFile("a/b", 0, 0, 1, 0, "avro")
    with pytest.raises(ValueError, match="range"):
        ArchiveFile("t", 0, 5, 4, 0, "avro")
    with pytest.raises(ValueError, match="hour"):
        ArchiveFile("t", 0, 0, 1, 1, "avro")
