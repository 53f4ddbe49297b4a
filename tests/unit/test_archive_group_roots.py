"""Which root a worker's client id names, and which group members archive another."""

from __future__ import annotations

from pathlib import Path

from streamlearn.archive.group_roots import (
    CLIENT_ID_PREFIX,
    archive_client_id,
    other_roots,
    root_fingerprint,
)


def test_one_local_directory_has_one_fingerprint_however_spelled(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    spellings = [str(root), f"{root}/", str(tmp_path / "x" / ".." / "archive"), f"file://{root}"]
    assert len({root_fingerprint(s, {}) for s in spellings}) == 1
    assert root_fingerprint(str(tmp_path / "other"), {}) != root_fingerprint(str(root), {})


def test_a_prefix_is_another_root_at_another_endpoint() -> None:
    minio = {"endpoint_url": "http://minio:9000"}
    assert root_fingerprint("s3://b/p", minio) == root_fingerprint("s3://b/p/", minio)
    assert root_fingerprint("s3://b/p", minio) != root_fingerprint("s3://b/p", {})
    assert root_fingerprint("s3://b/p", minio) != root_fingerprint("s3://b/q", minio)


def test_the_client_id_names_the_root_without_its_text() -> None:
    client_id = archive_client_id("s3://key:secret@bucket/prefix", {})
    assert client_id.startswith(CLIENT_ID_PREFIX)
    assert "secret" not in client_id
    assert "bucket" not in client_id


def test_members_of_another_root_are_found_and_old_workers_are_not_judged() -> None:
    own = archive_client_id("/data/archive", {})
    other = archive_client_id("s3://b/p", {})
    members = [own, own, other, "streamlearn-archive", "rdkafka"]
    assert other_roots(members, own) == [other]
    assert other_roots([own, "streamlearn-archive"], own) == []
