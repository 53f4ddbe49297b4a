"""The archive's record of which topic id its files belong to (archive/topic_ids.py), on
a local root and on fsspec's in-memory file system (object storage's code path)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import pytest

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.layout import parse_path
from streamlearn.archive.storage import ArchiveStore
from streamlearn.archive.topic_ids import (
    MARKER_NAME,
    check_claim,
    other_topic,
    record_topic_id,
    recorded_topic_id,
)

TOPIC = "ns.events.clean"
OLD, NEW = "q67IQsI2RCSor1NOctK0mQ", "Zm9vYmFyYmF6cXV4cXV1eA"


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveStore:
    if request.param == "local":
        return ArchiveStore(str(tmp_path / "archive"))
    return ArchiveStore(f"memory://topic-ids-{uuid.uuid4().hex}", staging_dir=tmp_path)


def test_a_new_archive_records_the_live_id_and_then_accepts_it(store: ArchiveStore) -> None:
    assert recorded_topic_id(store, TOPIC) is None
    assert check_claim(store, TOPIC, OLD, has_files=False)
    record_topic_id(store, TOPIC, OLD)
    assert recorded_topic_id(store, TOPIC) == OLD
    assert not check_claim(store, TOPIC, OLD, has_files=True)
    assert other_topic(store, TOPIC, OLD) is None


def test_files_of_another_id_are_refused_naming_the_topic_both_ids_and_what_to_do(
    store: ArchiveStore,
) -> None:
    record_topic_id(store, TOPIC, OLD)
    with pytest.raises(ArchiveError) as refused:
        check_claim(store, TOPIC, NEW, has_files=True)
    message = str(refused.value)
    assert TOPIC in message
    assert f"topic id {OLD}" in message
    assert f"topic id {NEW}" in message
    assert "recreated" in message
    assert "--root" in message
    assert recorded_topic_id(store, TOPIC) == OLD  # the refusal changes nothing
    found = other_topic(store, TOPIC, NEW)
    assert found is not None
    assert (found.recorded, found.live) == (OLD, NEW)


def test_an_archive_written_before_markers_is_taken_as_the_live_topics_and_says_so(
    store: ArchiveStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="streamlearn.archive.topic_ids"):
        assert check_claim(store, TOPIC, NEW, has_files=True)
    assert "carry no topic id" in caplog.text
    assert other_topic(store, TOPIC, NEW) is None  # readers: nothing to tell by


def test_a_marker_without_files_left_gives_way_to_the_live_id(store: ArchiveStore) -> None:
    # The old files were moved aside but not the marker: there is nothing to protect.
    record_topic_id(store, TOPIC, OLD)
    assert check_claim(store, TOPIC, NEW, has_files=False)
    record_topic_id(store, TOPIC, NEW)
    assert recorded_topic_id(store, TOPIC) == NEW


def test_the_marker_is_no_archive_file_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    store = ArchiveStore(str(tmp_path / "archive"))
    record_topic_id(store, TOPIC, OLD)
    record_topic_id(store, TOPIC, NEW)
    folder = tmp_path / "archive" / TOPIC
    assert [p.name for p in folder.iterdir()] == [MARKER_NAME]
    assert parse_path(f"{TOPIC}/{MARKER_NAME}") is None
    assert store.list_files(TOPIC) == []
    assert store.list_topics() == [TOPIC]
    assert json.loads((folder / MARKER_NAME).read_text()) == {"topic": TOPIC, "topic_id": NEW}


def test_a_marker_that_is_not_one_is_refused_naming_it(tmp_path: Path) -> None:
    store = ArchiveStore(str(tmp_path / "archive"))
    store.write_topic_file(TOPIC, MARKER_NAME, b"not json")
    with pytest.raises(ArchiveError, match=rf"{TOPIC}/{MARKER_NAME} is not a marker"):
        check_claim(store, TOPIC, NEW, has_files=True)
