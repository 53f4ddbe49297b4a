"""The embedded default's model signing key: made once per data directory, private, reused."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from streamlearn.exceptions import ConfigurationError
from streamlearn.settings import Settings
from streamlearn.up import local_signing_key
from streamlearn.up.signing_key import keep_local_rotation, with_local_key


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


def test_a_key_file_others_may_read_is_refused_naming_it_and_the_chmod(tmp_path: Path) -> None:
    # Copied with a plain `cp -r`, restored from a backup or unpacked with the umask's 0644,
    # the key every worker trusts was read silently: any local user could sign snapshots.
    path = tmp_path / "model-signing.key"
    key = local_signing_key(path).get_secret_value()
    path.chmod(0o644)
    with pytest.raises(ConfigurationError) as refused:
        local_signing_key(path)
    message = str(refused.value)
    assert f"{path} holds the model-signing key" in message
    assert "(mode 0644)" in message
    assert f"chmod 600 {path}" in message
    assert key not in message
    path.chmod(0o640)  # shared with the owner's group, as the TLS key files may be
    assert local_signing_key(path).get_secret_value() == key


def test_a_rotation_others_may_change_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    rotation = keep_local_rotation(tmp_path, "model_signing_key: " + "a" * 64 + "\n")
    assert with_local_key(settings).model_signing_key is not None
    rotation.chmod(0o662)
    with pytest.raises(ConfigurationError, match=r"model-signing\.rotation\.yaml.*0662"):
        with_local_key(settings)
