"""The HMAC signature of a model snapshot: what it covers and how it is computed.

A module of its own so that the keyring (which key signed a snapshot) can check a
signature without importing the snapshot module, which imports the keyring.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import SecretStr

from streamlearn.exceptions import ConfigurationError

SIGNATURE_DOMAIN = b"streamlearn.ModelSnapshot/1\n"
SIGNED_FIELDS = (
    "model_name",
    "version",
    "parent_version",
    "created_ts",
    "trained_examples",
    "offsets",
    "metrics",
    "libraries",
    "spec",
    "content_type",
    "payload_sha256",
    "signing_key_id",
)
"""Every field the signature covers besides the payload (all but payload and signature),
and ``manifest`` when present."""

SigningKey = SecretStr | str | bytes

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def key_bytes(key: SigningKey | None) -> bytes:
    """The raw HMAC key; a missing or empty key is a configuration error, not a skip."""
    if isinstance(key, SecretStr):
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode()
    if not key:
        raise ConfigurationError("model snapshots need STREAMLEARN_MODEL_SIGNING_KEY")
    return key


def millis(value: datetime | int) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (aware - EPOCH) // MILLISECOND
    return int(value)


def _signed_metadata(snapshot: Mapping[str, Any]) -> bytes:
    meta = {
        "model_name": str(snapshot["model_name"]),
        "version": int(snapshot["version"]),
        "parent_version": (
            None if snapshot["parent_version"] is None else int(snapshot["parent_version"])
        ),
        "created_ts": millis(snapshot["created_ts"]),
        "trained_examples": int(snapshot["trained_examples"]),
        "offsets": [
            [str(o["topic"]), int(o["partition"]), int(o["offset"])] for o in snapshot["offsets"]
        ],
        "metrics": {str(k): float(v).hex() for k, v in snapshot["metrics"].items()},
        "libraries": {str(k): str(v) for k, v in snapshot["libraries"].items()},
        "spec": str(snapshot["spec"]),
        "content_type": str(snapshot["content_type"]),
        "payload_sha256": str(snapshot["payload_sha256"]),
        "signing_key_id": (
            None if snapshot["signing_key_id"] is None else str(snapshot["signing_key_id"])
        ),
    }
    if snapshot.get("manifest") is not None:
        meta["manifest"] = str(snapshot["manifest"])
    return canonical_json(meta).encode("ascii")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, ASCII: the same text for the same data, in any language."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign(snapshot: Mapping[str, Any], key: SigningKey) -> str:
    """The hex signature of ``snapshot`` (its ``signature`` field is ignored)."""
    mac = hmac.new(key_bytes(key), SIGNATURE_DOMAIN, hashlib.sha256)
    mac.update(_signed_metadata(snapshot))
    mac.update(b"\n")
    mac.update(snapshot["payload"])
    return mac.hexdigest()
