"""The embedded default's model-signing key, and its rotation.

Without ``STREAMLEARN_MODEL_SIGNING_KEY``, ``up`` signs with a key it makes in the data
directory (``model-signing.key``), and the replay commands verify with it. ``keys rotate``
from that key writes its settings file, and also the data directory's rotation
(``model-signing.rotation.yaml``, the same settings): from then on ``up`` and the replay
commands there sign with the new key and verify the old one until its grace ends, as every
process given the file does; a plain ``up`` no longer goes back to the old key.
"""

from __future__ import annotations

import os
import secrets
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from streamlearn.exceptions import ConfigurationError
from streamlearn.http_tls import NOT_PRIVATE
from streamlearn.settings import Settings

LOCAL_SIGNING_KEY_FILE = "model-signing.key"
LOCAL_ROTATION_FILE = "model-signing.rotation.yaml"


def local_signing_key(path: Path) -> SecretStr:
    """Made once per data directory (owner read/write only) and reused, so a restarted
    system still verifies its own snapshots. Deployments set STREAMLEARN_MODEL_SIGNING_KEY
    from their secret store instead."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32))
    return SecretStr(_read_private(path).strip())


def _read_private(path: Path) -> str:
    """The text of a key file of the data directory, refused when others may read or change
    it: whoever reads the key signs snapshots every worker serves, and a data directory that
    was copied, restored or unpacked may hold it at the umask's 0644. The settings files and
    the TLS key files are refused the same way."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & NOT_PRIVATE:
        raise ConfigurationError(
            f"{path} holds the model-signing key and others may read or change it (mode "
            f"{mode:04o}): make it 0600 (chmod 600 {path}); if others did read it, replace "
            "it (`streamlearn keys rotate`)"
        )
    return path.read_text()


def with_local_key(settings: Settings, *, make: bool = False) -> Settings:
    """``settings`` signing with the data directory's key when they name none: its newest
    rotation (the new key, and the previous one until its grace ends), else the key ``up``
    made there (made now with ``make``), else unchanged (no key)."""
    if settings.model_signing_key is not None:
        return settings
    rotation = settings.data_dir / LOCAL_ROTATION_FILE
    if rotation.is_file():
        rotated = yaml.safe_load(_read_private(rotation))
        return settings.model_copy(update=_rotation_settings(rotated))
    key_file = settings.data_dir / LOCAL_SIGNING_KEY_FILE
    if not make and not key_file.is_file():
        return settings
    return settings.model_copy(update={"model_signing_key": local_signing_key(key_file)})


def key_source(settings: Settings) -> str | None:
    """Where :func:`with_local_key` takes the key ``settings`` (as given) sign with: the
    setting, the data directory's rotation or key file; None: no key anywhere."""
    if settings.model_signing_key is not None:
        return "STREAMLEARN_MODEL_SIGNING_KEY"
    for name in (LOCAL_ROTATION_FILE, LOCAL_SIGNING_KEY_FILE):
        if (settings.data_dir / name).is_file():
            return str(settings.data_dir / name)
    return None


def missing_key_hint(settings: Settings) -> str:
    """What to set when no key signs: either key source :func:`with_local_key` reads."""
    return (
        f"set STREAMLEARN_MODEL_SIGNING_KEY, or STREAMLEARN_DATA_DIR to the directory `up` "
        f"ran with, whose {LOCAL_SIGNING_KEY_FILE} it reads (now {settings.data_dir}; "
        f"`up --data-dir` names only where the broker's data goes)"
    )


def _rotation_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A rotation's file as settings values (what ``Settings`` makes of the same file)."""
    until = values.get("model_previous_signing_key_until")
    previous = values.get("model_previous_signing_key")
    return {
        "model_signing_key": SecretStr(str(values["model_signing_key"])),
        "model_signing_key_id": values.get("model_signing_key_id"),
        "model_previous_signing_key": None if previous is None else SecretStr(str(previous)),
        "model_previous_signing_key_id": values.get("model_previous_signing_key_id"),
        "model_previous_signing_key_until": (
            None if until is None else datetime.fromisoformat(str(until))
        ),
    }


def keep_local_rotation(data_dir: Path, rotated: str) -> Path:
    """Record ``rotated`` (a rotation's settings file) as the data directory's rotation,
    owner-only, replacing the one before it in one step."""
    path = data_dir / LOCAL_ROTATION_FILE
    staged = path.with_suffix(".tmp")
    staged.unlink(missing_ok=True)
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(rotated)
    os.replace(staged, path)
    return path
