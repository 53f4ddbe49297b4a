"""The embedded default's model signing key: made once per data directory, private, reused."""

from __future__ import annotations

import stat
from pathlib import Path

from streamlearn.up import local_signing_key


def test_the_key_is_made_once_readable_only_by_its_owner_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "data" / "model-signing.key"
    first = local_signing_key(path)
    assert len(first.get_secret_value()) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert local_signing_key(path).get_secret_value() == first.get_secret_value()
    assert "*" in str(first), "printed masked"


def test_each_data_directory_gets_its_own_key(tmp_path: Path) -> None:
    one = local_signing_key(tmp_path / "a" / "key").get_secret_value()
    two = local_signing_key(tmp_path / "b" / "key").get_secret_value()
    assert one != two
