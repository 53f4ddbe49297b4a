"""The embedded default's model-signing key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

LOCAL_SIGNING_KEY_FILE = "model-signing.key"


def local_signing_key(path: Path) -> SecretStr:
    """Made once per data directory (owner read/write only) and reused, so a restarted
    system still verifies its own snapshots. Deployments set STREAMLEARN_MODEL_SIGNING_KEY
    from their secret store instead."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(secrets.token_hex(32))
    return SecretStr(path.read_text().strip())


def command_signing_key(settings_key: SecretStr | None, data_dir: Path) -> SecretStr | None:
    """The key a command verifies or signs with: the settings' own, else the key ``up``
    made in ``data_dir`` (so ``replay verify`` after ``up`` needs no setting), else None."""
    if settings_key is not None:
        return settings_key
    path = data_dir / LOCAL_SIGNING_KEY_FILE
    return SecretStr(path.read_text().strip()) if path.is_file() else None
