"""Snapshot records: schema, signature coverage, verification order and safe loading."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from streamlearn.exceptions import ConfigurationError
from streamlearn.models import SPECS, build_snapshot, load_model, model_input, verify_snapshot
from streamlearn.models.checks import training_stream
from streamlearn.models.exceptions import (
    BadSignature,
    ForbiddenClass,
    PayloadDigestMismatch,
    SnapshotRejected,
    UndecodableSnapshot,
    UnknownSnapshotSpec,
)
from streamlearn.models.signature import SIGNED_FIELDS, sign
from streamlearn.models.snapshot import CONTENT_TYPE
from streamlearn.serde import AvroSerde, InMemoryRegistry, load_schema

KEY = b"test-signing-key"
CREATED = datetime(2026, 11, 30, 12, 0, 0, 123_456, tzinfo=UTC)
OFFSETS = {("training.examples", 2): 900, ("training.examples", 0): 1200}


def _model(name: str = "ctr", n: int = 300) -> Any:
    spec = SPECS[name]
    model = spec.new_model()
    for x, label in training_stream(spec, n):
        spec.learn(model, x, label)
    return model


def _snapshot(name: str = "ctr", examples: int = 300, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "version": 3,
        "parent_version": 2,
        "trained_examples": 300,
        "offsets": OFFSETS,
        "metrics": {"log_loss": 0.5, "auc": 0.81},
        "created": CREATED,
        "key": KEY,
        "key_id": "k1",
    }
    options.update(overrides)
    return build_snapshot(SPECS[name], _model(name, examples), **options)


def _resigned(snapshot: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A snapshot changed *by the key holder* (valid signature), to reach later checks."""
    changed = {**snapshot, **changes}
    changed["signature"] = sign(changed, KEY)
    return changed


@pytest.fixture(scope="module")
def serde() -> AvroSerde:
    return AvroSerde.for_topic(InMemoryRegistry(), "model.state", "ModelSnapshot")


def test_record_matches_the_schema_and_survives_avro(serde: AvroSerde) -> None:
    snapshot = _snapshot()
    assert list(snapshot) == [f["name"] for f in load_schema("ModelSnapshot")["fields"]]
    decoded = serde.decode(serde.encode(snapshot))
    assert decoded == snapshot
    verify_snapshot(decoded, KEY)
    loaded = load_model(decoded, KEY)
    x = model_input({"price": 12.0, "category": "books"}, {"placement": "top"})
    assert loaded.spec is SPECS["ctr"]
    assert loaded.spec.predict(loaded.model, x) == SPECS["ctr"].predict(_model(), x)
    assert (loaded.version, loaded.parent_version, loaded.trained_examples) == (3, 2, 300)
    assert loaded.offsets == OFFSETS
    assert loaded.metrics == {"auc": 0.81, "log_loss": 0.5}


def test_fields() -> None:
    snapshot = _snapshot()
    assert snapshot["created_ts"] == CREATED.replace(microsecond=123_000)
    assert snapshot["offsets"] == [
        {"topic": "training.examples", "partition": 0, "offset": 1200},
        {"topic": "training.examples", "partition": 2, "offset": 900},
    ]
    assert set(snapshot["libraries"]) == {"numpy", "python", "river", "streamlearn"}
    assert snapshot["content_type"] == CONTENT_TYPE
    assert snapshot["spec"] == SPECS["ctr"].describe()
    assert snapshot["payload_sha256"] == hashlib.sha256(snapshot["payload"]).hexdigest()
    assert snapshot["signing_key_id"] == "k1"
    assert len(snapshot["signature"]) == 64
    first = _snapshot(version=1, parent_version=None)
    assert first["parent_version"] is None


def test_signature_is_what_the_documentation_says() -> None:
    snapshot = _snapshot()
    meta = {
        "model_name": "ctr",
        "version": 3,
        "parent_version": 2,
        "created_ts": int(CREATED.timestamp() * 1000),
        "trained_examples": 300,
        "offsets": [["training.examples", 0, 1200], ["training.examples", 2, 900]],
        "metrics": {"auc": (0.81).hex(), "log_loss": (0.5).hex()},
        "libraries": snapshot["libraries"],
        "spec": snapshot["spec"],
        "content_type": CONTENT_TYPE,
        "payload_sha256": snapshot["payload_sha256"],
        "signing_key_id": "k1",
    }
    assert set(meta) == set(SIGNED_FIELDS)
    message = (
        b"streamlearn.ModelSnapshot/1\n"
        + json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        + b"\n"
        + snapshot["payload"]
    )
    assert snapshot["signature"] == hmac.new(KEY, message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model_name", "ctr_tree"),
        ("version", 4),
        ("parent_version", None),
        ("created_ts", datetime(2026, 11, 30, 12, 0, 1, tzinfo=UTC)),
        ("trained_examples", 301),
        ("offsets", [{"topic": "training.examples", "partition": 0, "offset": 1201}]),
        ("metrics", {"log_loss": 0.5, "auc": math.nextafter(0.81, 1.0)}),
        ("libraries", {"river": "0.0"}),
        ("spec", SPECS["ctr_tree"].describe()),
        ("content_type", "application/python-pickle"),
        ("payload_sha256", "0" * 64),
        ("signing_key_id", "k2"),
    ],
)
def test_every_signed_field_is_covered(field: str, value: Any) -> None:
    tampered = {**_snapshot(), field: value}
    with pytest.raises(BadSignature) as caught:
        verify_snapshot(tampered, KEY)
    assert caught.value.reason == "bad_signature"


def test_a_changed_payload_byte_or_a_wrong_key_is_a_bad_signature() -> None:
    snapshot = _snapshot()
    payload = bytearray(snapshot["payload"])
    payload[len(payload) // 2] ^= 0x01
    for tampered, key in (
        ({**snapshot, "payload": bytes(payload)}, KEY),
        (snapshot, b"another-key"),
        ({**snapshot, "signature": "not hex ✗"}, KEY),
    ):
        with pytest.raises(BadSignature) as caught:
            load_model(tampered, key)
        assert (caught.value.model_name, caught.value.version) == ("ctr", 3)
        assert "ctr v3" in str(caught.value)


def test_digest_is_checked_after_the_signature() -> None:
    snapshot = _snapshot()
    # Signed by the key holder, but the digest does not describe the payload (a bug).
    inconsistent = _resigned(snapshot, payload_sha256="0" * 64)
    with pytest.raises(PayloadDigestMismatch) as caught:
        verify_snapshot(inconsistent, KEY)
    assert caught.value.reason == "payload_digest_mismatch"
    # Tampered digest, not re-signed: the signature check catches it first.
    with pytest.raises(BadSignature):
        verify_snapshot({**snapshot, "payload_sha256": "0" * 64}, KEY)


def test_unknown_spec_and_content_type_are_rejected_before_unpickling() -> None:
    snapshot = _snapshot()
    other = json.loads(snapshot["spec"])
    other["revision"] += 1
    for changes, error, reason in (
        ({"spec": json.dumps(other)}, UnknownSnapshotSpec, "unknown_spec"),
        ({"spec": "not json"}, UnknownSnapshotSpec, "unknown_spec"),
        ({"content_type": "application/x-other"}, UndecodableSnapshot, "undecodable"),
    ):
        with pytest.raises(error) as caught:
            load_model(_resigned(snapshot, **changes), KEY)
        assert caught.value.reason == reason
    # Only the specs this process is told about count.
    with pytest.raises(UnknownSnapshotSpec):
        load_model(snapshot, KEY, specs={"ctr_tree": SPECS["ctr_tree"]})


def test_a_spec_refusal_names_what_differs_and_the_setting_not_both_whole_texts() -> None:
    """Found by a new user: a worker without STREAMLEARN_LABEL_HORIZON_S=20 logged, for
    every version of both models, both whole spec texts (~900 characters each) to compare by
    eye; `replay model` names the difference and the setting for the same mismatch."""
    snapshot = _snapshot()
    theirs = json.loads(snapshot["spec"])
    theirs["label"]["horizon_s"] = 20.0
    with pytest.raises(UnknownSnapshotSpec) as caught:
        load_model(_resigned(snapshot, spec=json.dumps(theirs)), KEY)
    said = str(caught.value)
    assert "label.horizon_s 20 there, 1800 here" in said, said
    assert "STREAMLEARN_LABEL_HORIZON_S=20" in said
    assert len(said) < 400, said


def test_a_signed_payload_with_a_forbidden_class_never_runs(tmp_path: Path) -> None:
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.system, (f"touch {target}",))

    snapshot = build_snapshot(
        SPECS["ctr"],
        None,
        payload=pickle.dumps(Evil(), protocol=5),
        version=9,
        parent_version=8,
        trained_examples=0,
        offsets={},
        metrics={},
        created=CREATED,
        key=KEY,
    )
    verify_snapshot(snapshot, KEY)  # the signature is fine: the unpickler must hold
    with pytest.raises(ForbiddenClass) as caught:
        load_model(snapshot, KEY)
    assert isinstance(caught.value, SnapshotRejected)
    assert (caught.value.reason, caught.value.model_name, caught.value.version) == (
        "forbidden_class",
        "ctr",
        9,
    )
    assert "system" in str(caught.value)
    assert not target.exists()


def test_malformed_records_are_undecodable() -> None:
    snapshot = _snapshot()
    for broken in (
        {k: v for k, v in snapshot.items() if k != "signature"},
        {k: v for k, v in snapshot.items() if k != "offsets"},
        {**snapshot, "version": "three"},
    ):
        with pytest.raises(UndecodableSnapshot):
            verify_snapshot(broken, KEY)


def test_keys() -> None:
    snapshot = _snapshot()
    verify_snapshot(snapshot, SecretStr(KEY.decode()))
    verify_snapshot(snapshot, KEY.decode())
    for missing in (None, "", SecretStr("")):
        with pytest.raises(ConfigurationError):
            verify_snapshot(snapshot, missing)  # type: ignore[arg-type]


def test_snapshots_of_a_tree_round_trip(serde: AvroSerde) -> None:
    # ctr_tree is DerivedFeatures | HistogramCalibrated(TrailingAverage(<tree>)): the
    # trees, the live one and the copies taken every 500 examples.
    snapshot = _snapshot("ctr_tree", examples=1200, trained_examples=1200)
    loaded = load_model(serde.decode(serde.encode(snapshot)), KEY)
    trees, again = (
        list(m.steps.values())[-1].classifier.members
        for m in (loaded.model, _model("ctr_tree", 1200))
    )
    assert len(trees) == len(again) > 1
    assert [t.n_nodes for t in trees] == [t.n_nodes for t in again]


def test_the_installed_river_version_is_read_once_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reading a distribution's metadata parses its METADATA file (0.8 ms): a learner
    # publishing a snapshot every few seconds paid that each time for the same answer.
    from streamlearn.models import snapshot as snapshot_module

    reads: list[str] = []

    def version(name: str) -> str:
        reads.append(name)
        return "9.9.9"

    snapshot_module.installed_version.cache_clear()
    monkeypatch.setattr(snapshot_module.metadata, "version", version)
    try:
        first = snapshot_module.libraries()
        first["river"] = "changed by a caller"
        second = snapshot_module.libraries()
    finally:
        snapshot_module.installed_version.cache_clear()
    assert reads == ["river"]
    assert second["river"] == "9.9.9"  # each call gets its own dict
