"""Which version a prediction worker serves when the learner's gate holds versions back:
the newest promoted one, while an arm routed to ``<name>~newest`` gets the newest."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from streamlearn.models import SPECS, SnapshotRejected, build_snapshot, load_model
from streamlearn.models.keyring import Keyring, PreviousKey
from streamlearn.models.snapshot import is_promoted, signed_again
from streamlearn.serde import SerdeError
from streamlearn.serving.experiments import (
    Arm,
    Experiment,
    ExperimentBook,
    base_model,
    served_model,
)
from streamlearn.serving.follower import HELD_BACK, StateFollower
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore
from tests.serving_support import KEY, _payload


def gated(version: int, promoted: bool | None) -> dict[str, Any]:
    """A signed ``ctr`` snapshot whose metrics say the gate promoted it or not (None: no
    gate, no ``promoted`` figure)."""
    metrics = {"auc": 0.7} if promoted is None else {"promoted": float(promoted)}
    return build_snapshot(
        SPECS["ctr"],
        None,
        version=version,
        parent_version=version - 1 or None,
        trained_examples=300,
        offsets={("training.examples", 0): 300},
        metrics=metrics,
        created=datetime.now(UTC),
        key=KEY,
        payload=_payload("ctr", 300),
    )


def test_the_store_serves_the_promoted_version_and_newest_routes_to_the_newest() -> None:
    store = ModelStore(["ctr"])
    store.put(load_model(gated(1, True), KEY), promoted=True)
    store.put(load_model(gated(2, False), KEY), promoted=False)
    store.put(load_model(gated(3, False), KEY), promoted=False)
    assert store.version("ctr") == 1
    newest = store.get("ctr~newest")
    assert newest is not None
    assert newest.loaded.version == 3
    assert (store.version("ctr"), store.newest_version("ctr")) == (1, 3)
    store.put(load_model(gated(4, True), KEY), promoted=True)
    assert store.version("ctr") == store.newest_version("ctr") == 4
    # An older promoted version arriving late changes neither.
    store.put(load_model(gated(2, True), KEY), promoted=True)
    assert store.version("ctr") == store.newest_version("ctr") == 4


def test_without_a_known_promoted_version_the_newest_serves_everybody() -> None:
    # A compacted model.state may keep only the latest snapshot, held back or not.
    store = ModelStore(["ctr"])
    store.put(load_model(gated(7, False), KEY), promoted=False)
    served = store.get("ctr")
    assert served is not None
    assert served.loaded.version == 7
    assert store.version("ctr") == 0
    assert store.missing() == []
    assert store.unpublished() == []


def test_promoted_is_read_from_the_snapshot_metrics() -> None:
    assert is_promoted(gated(1, None))  # no gate: every version is promoted
    assert is_promoted(gated(1, True))
    assert not is_promoted(gated(1, False))


def test_a_newest_arm_covers_its_model_and_its_predictions_train_it() -> None:
    assert base_model("ctr~newest") == "ctr"
    assert base_model("ctr@treatment") == "ctr"
    assert served_model("ctr~newest") == "ctr"
    assert served_model("ctr@treatment") == "ctr@treatment"
    experiment = Experiment(
        "gate", "s", (Arm("promoted", "ctr", 1), Arm("newest", "ctr~newest", 1))
    )
    book = ExperimentBook()
    book.put(experiment)
    assert book.covering("ctr") is experiment
    assert ModelStore(["ctr"]).wants("ctr~newest")


class _Serde:
    """Stands in for the Avro serde: the records' values are the decoded snapshots."""

    def decode(self, value: dict[str, Any], **_where: Any) -> dict[str, Any]:
        return value


def _follower(store: ModelStore) -> StateFollower:
    return StateFollower(
        consumer_config={},
        model_topic="model.state",
        experiment_topic="experiments",
        snapshot_serde=_Serde(),  # type: ignore[arg-type]
        experiment_serde=_Serde(),  # type: ignore[arg-type]
        key=KEY,
        specs=SPECS,
        store=store,
        book=ExperimentBook(),
        metrics=ServingMetrics(),
        on_rejected=lambda exc: None,
    )


def _records(*snapshots: dict[str, Any], first: int = 0) -> list[Any]:
    return [
        SimpleNamespace(key=b"ctr", value=s, topic="model.state", partition=0, offset=i,
                        timestamp=1_800_000_000_000 + i)
        for i, s in enumerate(snapshots, start=first)
    ]  # fmt: skip


def test_catching_up_loads_the_newest_and_the_newest_promoted_of_a_batch() -> None:
    store = ModelStore(["ctr"])
    follower = _follower(store)
    batch = _records(gated(1, True), gated(2, True), gated(3, False), gated(4, False))
    asyncio.run(follower._snapshots(batch))
    assert (store.version("ctr"), store.newest_version("ctr")) == (2, 4)
    loaded = follower.metrics.snapshots_loaded.labels(model="ctr")._value.get()
    assert loaded == 2  # v4 and v2; v3 (older than v4, held back) skipped, v1 never read


def test_a_rejected_newest_snapshot_leaves_the_one_before_it_serving_a_new_worker() -> None:
    """A worker that starts after a bad snapshot (wrong key, undecodable) was published
    reads it as the newest of its batch: it must fall back to the verified one before it,
    as a running worker keeps serving it, not serve no model and never become ready."""
    forged = {**gated(2, True), "signature": "00" * 32}
    for bad in (forged, b"not a snapshot"):
        store = ModelStore(["ctr"])
        follower = _follower(store)
        rejected: list[Any] = []
        follower.on_rejected = rejected.append
        serde = _Serde() if isinstance(bad, dict) else _Undecodable()
        follower.snapshot_serde = serde  # type: ignore[assignment]
        asyncio.run(follower._snapshots(_records(gated(1, True), bad)))
        follower._now_caught_up()  # said once caught up: nothing newer replaced it
        served = store.get("ctr")
        assert served is not None, bad
        assert served.loaded.version == 1
        assert store.missing() == []
        assert len(rejected) == (1 if isinstance(bad, dict) else 0)


class _Undecodable(_Serde):
    """Decodes snapshots; a record of raw bytes does not decode (as a corrupt record)."""

    def decode(self, value: Any, **_where: Any) -> dict[str, Any]:
        if isinstance(value, bytes):
            raise SerdeError("not Avro")
        return super().decode(value)


def test_a_newer_held_back_version_leaves_the_promoted_one_serving() -> None:
    store = ModelStore(["ctr"])
    follower = _follower(store)
    asyncio.run(follower._snapshots(_records(gated(1, True))))
    outcome = asyncio.run(follower._snapshot(_records(gated(2, False))[0]))
    assert outcome == HELD_BACK
    assert store.get("ctr").loaded.version == 1  # type: ignore[union-attr]
    assert store.get("ctr~newest").loaded.version == 2  # type: ignore[union-attr]
    assert follower.metrics.model_version.labels(model="ctr")._value.get() == 1
    asyncio.run(follower._snapshot(_records(gated(3, True))[0]))
    assert store.get("ctr").loaded.version == 3  # type: ignore[union-attr]


class _Counting(_Serde):
    def __init__(self) -> None:
        self.decoded: list[int] = []

    def decode(self, value: dict[str, Any], **_where: Any) -> dict[str, Any]:
        self.decoded.append(int(value["version"]))
        return value


def _keyed(*records: tuple[bytes, dict[str, Any] | None]) -> list[Any]:
    return [
        SimpleNamespace(key=key, value=value, topic="model.state", partition=0, offset=i,
                        timestamp=1_800_000_000_000 + i)
        for i, (key, value) in enumerate(records)
    ]  # fmt: skip


def test_of_the_held_back_key_only_the_newest_record_of_a_batch_is_decoded() -> None:
    """Every version under ``ctr~newest`` is a held-back one: catching up on a topic not
    compacted yet decoded each of them (snapshots of several MB) before this."""
    store = ModelStore(["ctr"])
    follower = _follower(store)
    serde = follower.snapshot_serde = _Counting()  # type: ignore[assignment]
    batch = _keyed((b"ctr", gated(1, True)), (b"ctr~newest", gated(2, False)),
                   (b"ctr~newest", gated(3, False)), (b"ctr~newest", gated(4, False)))  # fmt: skip
    asyncio.run(follower._snapshots(batch))
    assert (store.version("ctr"), store.newest_version("ctr")) == (1, 4)
    assert sorted(serde.decoded) == [1, 4]


def test_a_deleted_held_back_key_is_not_verified_again() -> None:
    """The learner deletes ``ctr~newest`` (a tombstone) once a promoted version is newer:
    its last held-back version, which no longer verifies after a key rotation's grace,
    is then not refused (and alerted) at every worker start."""
    store = ModelStore(["ctr"])
    follower = _follower(store)
    rejected: list[Any] = []
    follower.on_rejected = rejected.append
    stale = {**gated(5, False), "signature": "00" * 32}
    batch = _keyed((b"ctr~newest", stale), (b"ctr", gated(6, True)), (b"ctr~newest", None))
    asyncio.run(follower._snapshots(batch))
    assert (store.version("ctr"), store.newest_version("ctr")) == (6, 6)
    assert rejected == []


def _retired_keyring() -> Keyring:
    """The keys after a rotation whose grace is over: ``old`` signed what came before it."""
    return Keyring(
        current=KEY,
        current_id="new",
        previous=(PreviousKey("old", "the-old-key", datetime(2026, 1, 1, tzinfo=UTC)),),
    )


def test_a_retired_keys_version_superseded_while_catching_up_raises_no_alert() -> None:
    """After a rotation the learner publishes its model again with the new key; until
    compaction, model.state also holds the versions the old key signed. A worker that
    started then read them in an earlier batch than the new one and alerted `retired_key`
    for a version nobody serves (one per model, per worker start). Refused and counted,
    it is said only if nothing newer of the same key has loaded once the worker is caught
    up, as when the newest version is the refused one."""
    old = signed_again(gated(4, True), "the-old-key", "old")
    new = signed_again(gated(4, True), KEY, "new")
    for batches, alerts in (([[old], [new]], 0), ([[gated(3, True)], [old]], 1)):
        store = ModelStore(["ctr"])
        follower = _follower(store)
        follower.key = _retired_keyring()
        rejected: list[Any] = []
        follower.on_rejected = rejected.append
        for first, batch in enumerate(batches):
            asyncio.run(follower._snapshots(_records(*batch, first=first)))
        assert rejected == [], "nothing is said before the worker has caught up"
        follower._now_caught_up()
        assert [exc.reason for exc in rejected] == ["retired_key"] * alerts
        refused = follower.metrics.snapshots_rejected.labels(reason="retired_key")
        assert refused._value.get() == 1
        served = store.get("ctr")
        assert served is not None
        assert served.loaded.version == (4 if alerts == 0 else 3)


def test_a_version_served_when_its_keys_grace_ends_is_no_longer_served() -> None:
    """A worker that loaded a version of the previous key during the grace kept serving it
    after the grace ended, while a worker started then refused that very snapshot
    (`retired_key`) and served the fallback: what a fleet served depended on when each
    worker had started, and a snapshot signed with a key being retired (perhaps for
    having leaked) kept being served by the older workers. At the grace's end a running
    worker drops it as a worker started then would refuse it: counted, alerted once,
    and served by what is left (a held-back version of the current key, else the
    fallback). A version of the current key is never touched."""
    now = [datetime(2026, 6, 1, tzinfo=UTC)]
    keyring = Keyring(
        current=KEY,
        current_id="new",
        previous=(PreviousKey("old", "the-old-key", datetime(2026, 6, 2, tzinfo=UTC)),),
        clock=lambda: now[0],
    )
    store = ModelStore(["ctr"])
    follower = _follower(store)
    follower.key = keyring
    rejected: list[Any] = []
    follower.on_rejected = rejected.append
    follower._now_caught_up()
    old_promoted = signed_again(gated(4, True), "the-old-key", "old")
    new_held_back = signed_again(gated(5, False), KEY, "new")
    asyncio.run(follower._snapshots(_records(old_promoted)))
    asyncio.run(follower._snapshots(_keyed((b"ctr~newest", new_held_back))))
    assert (store.version("ctr"), store.newest_version("ctr")) == (4, 5)
    follower._retire_expired()  # within the grace: nothing changes
    assert store.version("ctr") == 4
    assert rejected == []
    now[0] = datetime(2026, 6, 2, 0, 0, 1, tzinfo=UTC)
    follower._retire_expired()
    follower._retire_expired()  # said once
    assert store.version("ctr") == 0
    served = store.get("ctr")
    assert served is not None
    assert served.loaded.version == 5  # the current key's, held back
    assert [exc.reason for exc in rejected] == ["retired_key"]
    assert "ctr v4" in str(rejected[0])
    refused = follower.metrics.snapshots_rejected.labels(reason="retired_key")
    assert refused._value.get() == 1
    assert follower.metrics.model_version.labels(model="ctr")._value.get() == 0
    # Only the previous key's version was in the store: nothing is left but the fallback.
    alone = ModelStore(["ctr"])
    follower = _follower(alone)
    follower.key = keyring
    now[0] = datetime(2026, 6, 1, tzinfo=UTC)
    asyncio.run(follower._snapshots(_records(old_promoted)))
    now[0] = datetime(2026, 6, 3, tzinfo=UTC)
    follower._retire_expired()
    assert alone.get("ctr") is None
    assert alone.missing() == ["ctr"]


def test_once_caught_up_a_refused_version_is_alerted_at_once() -> None:
    store = ModelStore(["ctr"])
    follower = _follower(store)
    follower.key = _retired_keyring()
    rejected: list[Any] = []
    follower.on_rejected = rejected.append
    follower._now_caught_up()
    asyncio.run(follower._snapshots(_records(signed_again(gated(4, True), "the-old-key", "old"))))
    assert [exc.reason for exc in rejected] == ["retired_key"]


class _Consumer:
    """What the follower reads of aiokafka's consumer after a fetch: per partition, when
    the broker last answered (ms), the partition's end as answered, and the position."""

    def __init__(self, partitions: dict[Any, tuple[int | None, int | None, int]]) -> None:
        self.partitions = partitions

    def assignment(self) -> set[Any]:
        return set(self.partitions)

    def last_poll_timestamp(self, tp: Any) -> int | None:
        return self.partitions[tp][0]

    def highwater(self, tp: Any) -> int | None:
        return self.partitions[tp][1]

    async def position(self, tp: Any) -> int:
        return self.partitions[tp][2]


def test_the_follower_says_when_the_broker_last_answered_and_how_far_behind_it_is() -> None:
    """Found by a new user: with the broker away, aiokafka retries inside getmany, which
    returns nothing, as with nothing published; nothing a worker exported told the two
    apart (the follower's errors stayed 0; the model's age grows in both)."""
    from aiokafka import TopicPartition
    from prometheus_client import generate_latest

    follower = _follower(ModelStore(["ctr"]))
    follower.progress.started_s, follower.progress.clock = 990.0, lambda: 1000.0
    consumer = _Consumer({
        TopicPartition("model.state", 0): (998_000, 10, 7),
        TopicPartition("model.state", 1): (997_500, 4, 4),
        TopicPartition("experiments", 0): (None, None, 0),  # never answered
    })  # fmt: skip
    asyncio.run(follower._note_progress(consumer))  # type: ignore[arg-type]
    text = generate_latest(follower.metrics.registry).decode()
    assert 'streamlearn_serve_follower_fetch_age_seconds{topic="model.state"} 2.0' in text
    assert 'streamlearn_serve_follower_fetch_age_seconds{topic="experiments"} 10.0' in text
    assert 'streamlearn_serve_follower_lag_records{topic="model.state"} 3.0' in text
    assert 'streamlearn_serve_follower_lag_records{topic="experiments"} NaN' in text


def test_a_worker_catching_up_alerts_the_newest_refused_version_and_says_none_is_loaded(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by a new user: a worker started over v1 (good) and v2..v5 (refused) logged
    "still serving v0" and, once caught up, alerted v2 (read last, being oldest) instead
    of v5, the newest refused version."""
    # Without the filter of repeated lines, which other tests' refusals have primed.
    monkeypatch.setattr(logging.getLogger("streamlearn.serving.follower"), "filters", [])
    alerted: list[SnapshotRejected] = []
    follower = _follower(ModelStore(["ctr"]))
    follower.on_rejected = alerted.append
    forged = [{**gated(v, None), "signature": "0" * 64} for v in (2, 3, 4, 5)]
    with caplog.at_level("WARNING", logger="streamlearn.serving.follower"):
        asyncio.run(follower._snapshots(_records(gated(1, None), *forged)))
    assert follower.store.version("ctr") == 1
    assert "still serving v0" not in caplog.text
    assert "ctr v5 rejected (bad_signature)" in caplog.text
    assert "nothing loaded yet" in caplog.text
    follower._now_caught_up()
    assert [(exc.model_name, exc.version) for exc in alerted] == [("ctr", 5)]


def test_a_forged_snapshot_read_first_does_not_make_the_real_one_a_second_writer() -> None:
    """Found by a security pass: the worker noted each version's payload digest before
    verifying it, so a forged record of v2 (not signed with the key) read before the real
    v2 made the real one look like a second learner's: a critical `conflicting_version`
    alert, while only one learner writes. A snapshot that does not verify is no version."""
    store = ModelStore(["ctr"])
    said: list[SnapshotRejected] = []
    follower = _follower(store)
    follower.on_rejected = said.append
    follower.caught_up.set()
    forged = {**gated(2, True), "payload_sha256": "0" * 64, "signature": "forged"}
    assert asyncio.run(follower._snapshot(_records(forged)[0])) == "rejected"
    asyncio.run(follower._snapshot(_records(gated(2, True), first=1)[0]))
    assert store.version("ctr") == 2
    conflicts = follower.metrics.snapshots_rejected.labels(reason="conflicting_version")
    assert conflicts._value.get() == 0
    assert [exc.reason for exc in said] == ["bad_signature"]
