"""One `up` per data directory (the lock, without running `up`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlearn.exceptions import StreamlearnError
from streamlearn.up.data_dir_lock import one_up_per_data_dir

pytestmark = pytest.mark.unit


def test_a_second_up_in_the_same_data_directory_is_refused(tmp_path: Path) -> None:
    """Found by a new user: a second `up` in the data directory of a running one took the
    first's broker for the user's own (its `--port` ignored), and the two shared consumer
    groups: two learners published every model, and the summary counted 2,838 events in
    and 7,272 clean. It is refused, naming the first; once that one ends, `up` runs."""
    with one_up_per_data_dir(tmp_path):
        assert (tmp_path / "up.lock").read_text() == f"{os.getpid()}\n"
        with (
            pytest.raises(
                StreamlearnError, match=rf"another `streamlearn up` runs in .*{os.getpid()}"
            ),
            one_up_per_data_dir(tmp_path),
        ):
            pass
    with one_up_per_data_dir(tmp_path):
        pass


def test_a_data_directory_up_makes_is_its_owner_s_alone(tmp_path: Path) -> None:
    """Found by a security pass: `up` made its data directory with the umask's 0755, and
    under it the archive's files keep telemetry as it came (end users' raw IPs and user
    agents), readable by every local user."""
    data_dir = tmp_path / "new" / "streamlearn"
    with one_up_per_data_dir(data_dir):
        pass
    assert data_dir.stat().st_mode & 0o777 == 0o700
