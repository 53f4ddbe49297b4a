"""Which archive files retention deletes, and `archive expire` on a local root."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from streamlearn.archive.layout import HOUR_MS, ArchiveFile
from streamlearn.archive.retention import past_retention
from streamlearn.archive.storage import ArchiveStore
from streamlearn.cli import app

T0 = 1_764_489_600_000  # 2025-11-30 08:00 UTC, the start of an hour


def _file(partition: int, first: int, last: int, hours_after_t0: int) -> ArchiveFile:
    return ArchiveFile(
        "telemetry.events", partition, first, last, T0 + hours_after_t0 * HOUR_MS, "avro"
    )


def test_whole_hours_past_the_cutoff_go_but_each_partitions_newest_stays() -> None:
    old = [_file(0, 0, 9, 0), _file(0, 10, 19, 1), _file(1, 0, 4, 0)]
    recent = [_file(0, 20, 29, 5)]
    # The hour of the cutoff itself has not ended: its files stay.
    cutoff = T0 + 2 * HOUR_MS + 1
    assert past_retention([*old, *recent], cutoff) == sorted(old[:2], key=lambda f: f.path)
    # Partition 1's only file is its newest: kept, however old (it says where to resume).
    assert _file(1, 0, 4, 0) not in past_retention([*old, *recent], T0 + 100 * HOUR_MS)
    assert past_retention([_file(0, 0, 9, 0)], T0 + HOUR_MS) == []


def _touch(root: Path, file: ArchiveFile) -> None:
    path = root / file.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * 10)


def test_archive_expire_deletes_what_is_past_retention(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    files = [_file(0, 0, 9, 0), _file(0, 10, 19, 1), _file(0, 20, 29, 400_000)]
    for file in files:
        _touch(root, file)
    runner = CliRunner()
    dry = runner.invoke(
        app, ["archive", "expire", "--older-than-hours", "24", "--root", str(root), "--dry-run"]
    )
    assert dry.exit_code == 0, dry.output
    assert "2 file(s), 20 bytes, would be deleted" in dry.output
    assert len(ArchiveStore(str(root)).list_files("telemetry.events")) == 3
    done = runner.invoke(
        app, ["archive", "expire", "--older-than-hours", "24", "--root", str(root)]
    )
    assert done.exit_code == 0, done.output
    assert "2 file(s), 20 bytes, deleted" in done.output
    assert ArchiveStore(str(root)).list_files("telemetry.events") == [files[2]]
    # Emptied hour and date directories go too.
    assert not (root / files[0].path).parent.exists()
