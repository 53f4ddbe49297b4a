"""Which root a worker's client id names, and which group members archive another."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from streamlearn.archive import group_roots
from streamlearn.archive.group_roots import (
    CLIENT_ID_PREFIX,
    archive_client_id,
    other_roots,
    refuse_other_roots,
    root_fingerprint,
)
from streamlearn.consumer_groups import DESCRIBE_TIMEOUT_S
from streamlearn.settings import Settings


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


class _SilentFuture:
    def result(self, timeout: float | None = None) -> object:
        raise TimeoutError  # what a future of a broker that never answers raises: no text


class _SilentAdmin:
    def __init__(self, config: object) -> None:
        pass

    def describe_consumer_groups(self, groups: list[str], **_: object) -> dict[str, object]:
        return {group: _SilentFuture() for group in groups}


def test_a_group_kafka_did_not_describe_is_logged_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by an operator with the broker away: `could not describe group
    streamlearn-archive to check its roots: ` ended at the colon (a bare TimeoutError)."""
    monkeypatch.setattr(group_roots, "AdminClient", _SilentAdmin)
    settings = Settings(kafka_bootstrap="127.0.0.1:24633")
    with caplog.at_level(logging.WARNING, logger=group_roots.__name__):
        refuse_other_roots(settings, "streamlearn-archive", archive_client_id("/a", {}))
    (message,) = [record.getMessage() for record in caplog.records]
    assert message.endswith(
        "could not describe group streamlearn-archive to check its roots: Kafka at "
        f"127.0.0.1:24633 did not answer within {DESCRIBE_TIMEOUT_S:g}s"
    ), message
