"""Signed, versioned model snapshots (``ModelSnapshot`` records) and loading them safely.

The signature is the hex HMAC-SHA256, under the shared key
(``STREAMLEARN_MODEL_SIGNING_KEY``), of::

    b"streamlearn.ModelSnapshot/1\\n" + canonical metadata JSON + b"\\n" + payload

where the canonical metadata JSON is ``json.dumps(meta, sort_keys=True,
separators=(",", ":"), ensure_ascii=True)`` of every field of the record except
``payload`` and ``signature`` themselves:

===================  ===================================================================
``model_name``       string
``version``          integer
``parent_version``   integer or null
``created_ts``       integer milliseconds since the epoch
``trained_examples`` integer
``offsets``          list of ``[topic, partition, offset]`` in record order
``metrics``          object of name → ``float.hex()`` of the value (exact, language-neutral)
``libraries``        object of name → version
``spec``             string
``content_type``     string
``payload_sha256``   string
``signing_key_id``   string or null
``manifest``         string (only when the record has one: snapshots without a manifest
                     sign exactly what they signed before the field existed)
===================  ===================================================================

so changing any of them, or a single payload byte, invalidates the signature. The
``gate_state`` field (a promotion gate's state after the version's decision) is not
covered: it has a MAC of its own, bound to the signature
(:mod:`streamlearn.models.gate_state`), so workers of releases before it still verify. A
snapshot made by ``streamlearn replay model`` carries a ``manifest``: canonical JSON of
what was replayed (input offset ranges, spec, source, code version).
:func:`verify_snapshot` checks the signature first (constant-time compare), then the
payload digest; :func:`load_model` additionally requires a known content type and a spec
description equal to this process's spec of that name, and only then unpickles, with
:mod:`streamlearn.models.safe_pickle`. Nothing is unpickled before all of that passed.

Building a snapshot pickles and hashes the model: a few ms for ``ctr``, tens to hundreds
of ms for a grown tree. The functions here are plain and blocking; an asyncio caller runs
them with ``asyncio.to_thread`` and does not learn while they run.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from importlib import metadata
from typing import Any

import numpy

import streamlearn
from streamlearn.exceptions import ConfigurationError
from streamlearn.models import safe_pickle
from streamlearn.models.exceptions import (
    BadSignature,
    PayloadDigestMismatch,
    SnapshotRejected,
    UndecodableSnapshot,
    UnknownSnapshotSpec,
)
from streamlearn.models.keyring import Keyring
from streamlearn.models.signature import (
    EPOCH,
    MILLISECOND,
    SigningKey,
    canonical_json,
    millis,
    sign,
)
from streamlearn.models.spec_text import setting_hint, spec_differences
from streamlearn.models.specs import SPECS, ModelSpec

CONTENT_TYPE = "application/x-streamlearn-river-pickle; protocol=5; sets=sorted"

Offsets = Mapping[tuple[str, int], int]
"""(topic, partition) → next offset to read."""

NEWEST = "~newest"
"""Suffix of the ``model.state`` key of a version its promotion gate held back
(``ctr~newest``), and of an experiment arm's model routed to the newest version."""


def is_promoted(snapshot: Mapping[str, Any]) -> bool:
    """Whether the learner promoted this snapshot (``metrics.promoted``, written only by a
    spec with a promotion gate: a snapshot without it is promoted)."""
    return float((snapshot.get("metrics") or {}).get("promoted", 1.0)) != 0.0


def state_key(snapshot: Mapping[str, Any]) -> str:
    """The ``model.state`` key a snapshot is published under: its model's name, or, for a
    version its gate held back, that name and :data:`NEWEST`. The topic is compacted by
    key, so a held-back version does not replace the newest promoted one there (a worker
    started later would find no promoted version to serve)."""
    name = str(snapshot["model_name"])
    return name if is_promoted(snapshot) else name + NEWEST


def state_keys(names: Iterable[str]) -> set[str]:
    """Every ``model.state`` key the snapshots of models ``names`` may be under."""
    return {key for name in names for key in (name, name + NEWEST)}


@functools.cache
def installed_version(distribution: str) -> str:
    """The installed version of ``distribution``, read once per process (reading it parses
    the distribution's metadata file: 0.8 ms, at every snapshot a learner makes)."""
    return metadata.version(distribution)


def libraries() -> dict[str, str]:
    """Versions of what made (and must read) a payload."""
    return {
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "river": installed_version("river"),
        "streamlearn": streamlearn.__version__,
    }


def build_snapshot(
    spec: ModelSpec,
    model: Any,
    *,
    version: int,
    parent_version: int | None,
    trained_examples: int,
    offsets: Offsets,
    metrics: Mapping[str, float],
    created: datetime,
    key: SigningKey,
    key_id: str | None = None,
    model_name: str | None = None,
    payload: bytes | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A signed ``ModelSnapshot`` record of ``model`` (pass ``payload`` if already pickled
    with :func:`safe_pickle.dumps`). Offsets are written sorted by topic and partition;
    ``created`` is truncated to milliseconds, the precision the record keeps; a
    ``manifest`` is stored (and signed) as canonical JSON."""
    if payload is None:
        payload = safe_pickle.dumps(model)
    created_ms = millis(created)
    snapshot: dict[str, Any] = {
        "model_name": model_name or spec.name,
        "version": version,
        "parent_version": parent_version,
        "created_ts": EPOCH + created_ms * MILLISECOND,
        "trained_examples": trained_examples,
        "offsets": [
            {"topic": topic, "partition": partition, "offset": offset}
            for (topic, partition), offset in sorted(offsets.items())
        ],
        "metrics": {name: float(value) for name, value in sorted(metrics.items())},
        "libraries": libraries(),
        "spec": spec.describe(),
        "content_type": CONTENT_TYPE,
        "payload": payload,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "signing_key_id": key_id,
        "signature": "",
        "manifest": None if manifest is None else canonical_json(manifest),
        "gate_state": None,  # sealed by the learner after signing (gate_state.py)
    }
    snapshot["signature"] = sign(snapshot, key)
    return snapshot


def signed_again(
    snapshot: Mapping[str, Any], key: SigningKey, key_id: str | None
) -> dict[str, Any]:
    """``snapshot`` as it is (version, payload, figures), signed with ``key`` as ``key_id``:
    after a key rotation, a version that must stay on ``model.state`` past the previous
    key's grace."""
    again = {**snapshot, "signing_key_id": key_id, "signature": ""}
    again["signature"] = sign(again, key)
    return again


def verify_snapshot(snapshot: Mapping[str, Any], key: SigningKey | Keyring) -> None:
    """Raise :class:`BadSignature` or :class:`PayloadDigestMismatch` unless ``snapshot`` is
    exactly what the holder of ``key`` signed; :class:`UndecodableSnapshot` if malformed.
    With a :class:`Keyring`, the key its ``signing_key_id`` names (:class:`RetiredKey`
    for a previous key past its grace)."""
    name, version = snapshot.get("model_name"), snapshot.get("version")
    checked_with = ""
    if isinstance(key, Keyring):
        try:
            checked_with = ": " + key.checked_with(snapshot)
            key = key.key_for(snapshot)
        except SnapshotRejected as exc:
            raise exc.at(_str_or_none(name), _int_or_none(version)) from None
    try:
        expected = sign(snapshot, key)
        payload = bytes(snapshot["payload"])
        claimed = str(snapshot["signature"])
        claimed_digest = str(snapshot["payload_sha256"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UndecodableSnapshot(f"malformed snapshot record: {exc!r}").at(
            _str_or_none(name), _int_or_none(version)
        ) from exc
    if not hmac.compare_digest(expected.encode(), claimed.encode()):
        raise BadSignature(f"signature does not match the metadata and payload{checked_with}").at(
            _str_or_none(name), _int_or_none(version)
        )
    if not hmac.compare_digest(
        hashlib.sha256(payload).hexdigest().encode(), claimed_digest.encode()
    ):
        raise PayloadDigestMismatch("payload sha256 differs from payload_sha256").at(
            _str_or_none(name), _int_or_none(version)
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified, unpickled model with the spec it was built from and its provenance."""

    spec: ModelSpec
    model: Any
    model_name: str
    version: int
    parent_version: int | None
    created_ts: datetime
    trained_examples: int
    offsets: dict[tuple[str, int], int]
    metrics: dict[str, float]


def spec_of(snapshot: Mapping[str, Any], specs: Mapping[str, ModelSpec] = SPECS) -> ModelSpec:
    """This process's spec whose description equals the snapshot's, or
    :class:`UnknownSnapshotSpec`."""
    text = snapshot.get("spec")
    try:
        name = json.loads(text)["name"] if isinstance(text, str) else None
    except (ValueError, TypeError, KeyError):
        name = None
    spec = specs.get(name) if isinstance(name, str) else None
    if spec is None:
        raise UnknownSnapshotSpec(
            f"spec {str(text)[:200]!r} is not one this process ships (no spec of that name)"
        )
    ours = spec.describe()
    if ours != text:
        differences = "; ".join(spec_differences(str(text), ours))
        raise UnknownSnapshotSpec(
            f"spec {name} differs from this process's ({differences}): run with the "
            f"learner's settings{setting_hint(str(text))}"
        )
    return spec


def recorded_spec(snapshot: Mapping[str, Any], specs: Mapping[str, ModelSpec] = SPECS) -> ModelSpec:
    """The shipped spec a snapshot names, with the label horizon it records (a setting:
    ``STREAMLEARN_LABEL_HORIZON_S``), whatever this process's settings say; or
    :class:`UnknownSnapshotSpec` when nothing shipped describes it exactly. For commands
    that recompute a snapshot (``replay verify``), not for loading one to serve."""
    text = snapshot.get("spec")
    try:
        recorded = json.loads(text) if isinstance(text, str) else {}
        shipped = specs[recorded["name"]]
        horizon = recorded["label"]["horizon_s"]
        spec = replace(shipped, label=replace(shipped.label, horizon_s=horizon))
    except (ValueError, TypeError, KeyError, ConfigurationError):
        return spec_of(snapshot, specs)  # raises, saying what is known
    if spec.describe() != text:
        return spec_of(snapshot, specs)
    return spec


def load_model(
    snapshot: Mapping[str, Any],
    key: SigningKey | Keyring,
    *,
    specs: Mapping[str, ModelSpec] = SPECS,
) -> LoadedModel:
    """Verify, check content type and spec, then unpickle with the restricted unpickler.

    Every refusal is a :class:`SnapshotRejected` naming the model and version; the caller
    counts it by ``reason``, alerts, and keeps the model it has.
    """
    verify_snapshot(snapshot, key)
    name, version = str(snapshot["model_name"]), int(snapshot["version"])
    try:
        if snapshot["content_type"] != CONTENT_TYPE:
            raise UndecodableSnapshot(f"unknown content type {snapshot['content_type']!r}")
        spec = spec_of(snapshot, specs)
        model = safe_pickle.loads(bytes(snapshot["payload"]))
    except SnapshotRejected as exc:
        exc.at(name, version)
        raise
    created = snapshot["created_ts"]
    return LoadedModel(
        spec=spec,
        model=model,
        model_name=name,
        version=version,
        parent_version=snapshot["parent_version"],
        created_ts=created if isinstance(created, datetime) else EPOCH + int(created) * MILLISECOND,
        trained_examples=int(snapshot["trained_examples"]),
        offsets={(o["topic"], int(o["partition"])): int(o["offset"]) for o in snapshot["offsets"]},
        metrics={str(k): float(v) for k, v in snapshot["metrics"].items()},
    )


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) else None
