"""The promotion gate's state in a snapshot (``ModelSnapshot.gate_state``), sealed.

A learner that resumes from a version must decide the next ones as the learner that
published it would have (:mod:`streamlearn.models.promotion`), so the snapshot carries what
the gate held after its decision. The field is canonical JSON::

    {"mac": <hex HMAC-SHA256>, "state": <the gate's state>}

where the MAC is taken, under the key that signed the snapshot, over::

    b"streamlearn.GateState/1\\n" + the snapshot's signature + b"\\n" + canonical state JSON

It has a MAC of its own rather than a place under the snapshot's ``signature``: a worker of
an earlier release reads the record without the field (Avro drops what its schema lacks)
and must still verify the signature, or it would refuse every held-back version during a
rolling upgrade. Bound to the signature, the state cannot be moved to another snapshot.
Nothing in it is unpickled: it is JSON of numbers and base64 doubles.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from streamlearn.models.keyring import Keyring
from streamlearn.models.signature import SigningKey, canonical_json, key_bytes

DOMAIN = b"streamlearn.GateState/1\n"


class GateStateRefusedError(ValueError):
    """A snapshot's gate state that cannot be used (its MAC, or its shape)."""


def _mac(signature: str, state_json: str, key: SigningKey) -> str:
    mac = hmac.new(key_bytes(key), DOMAIN, hashlib.sha256)
    mac.update(signature.encode("ascii"))
    mac.update(b"\n")
    mac.update(state_json.encode("ascii"))
    return mac.hexdigest()


def sealed(state: Mapping[str, Any], signature: str, key: SigningKey) -> str:
    """The ``gate_state`` field of a snapshot signed ``signature``, holding ``state``."""
    state_json = canonical_json(state)
    # canonical_json of {"mac": ..., "state": state}, without writing the state twice.
    return f'{{"mac":"{_mac(signature, state_json, key)}","state":{state_json}}}'


def opened(snapshot: Mapping[str, Any], key: SigningKey | Keyring) -> dict[str, Any] | None:
    """The gate state of ``snapshot`` (verified already: its signature names the key), or
    None when it has none; :class:`GateStateRefusedError` when its MAC does not match or it is
    not what :func:`sealed` writes."""
    text = snapshot.get("gate_state")
    if text is None:
        return None
    if isinstance(key, Keyring):
        key = key.key_for(snapshot)
    try:
        outer = json.loads(str(text))
        state, claimed = outer["state"], str(outer["mac"])
        expected = _mac(str(snapshot["signature"]), canonical_json(state), key)
    except (ValueError, KeyError, TypeError) as exc:
        raise GateStateRefusedError(f"gate_state is not sealed JSON: {exc}") from None
    if not hmac.compare_digest(expected.encode(), claimed.encode()):
        raise GateStateRefusedError("gate_state's MAC does not match the snapshot and key")
    if not isinstance(state, dict):
        raise GateStateRefusedError("gate_state's state is not an object")
    return state
