"""The follower that fills a worker's :class:`~streamlearn.serving.models.ModelStore` from
``model.state`` and its experiment book from the ``experiments`` topic.

:class:`StateFollower` reads both compacted topics from the beginning with no consumer
group (it assigns every partition and never commits), then follows them. A snapshot is
decoded and loaded off the event loop (:func:`~streamlearn.models.load_model`: signature,
digest, spec, restricted unpickler) and swapped in only when it passed every check and is
newer than the version served. A rejected snapshot is counted, alerted and logged, and the
previous model keeps serving; so does an unreachable broker (the follower retries, and
says how long ago the broker last answered: :mod:`~streamlearn.serving.follower_progress`).

Only models this worker serves are loaded: the configured specs (``STREAMLEARN_MODELS``,
with the settings' overrides: :func:`~streamlearn.models.configured.configured_specs`, the
same the learner uses, so the spec texts agree) and their per-arm models ``<spec>@<arm>``.
The worker is *caught up* once it has read to the end offsets it saw at start; it is ready
when caught up with every configured model loaded.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from streamlearn.kafka_clients import aiokafka_config, may_not_describe
from streamlearn.log_repeats import RepeatedLines
from streamlearn.models import ModelSpec, SnapshotRejected, load_model
from streamlearn.models.exceptions import (
    BadSignature,
    ConflictingVersion,
    PayloadDigestMismatch,
    RetiredKey,
)
from streamlearn.models.keyring import Keyring
from streamlearn.models.signature import SigningKey
from streamlearn.models.snapshot import is_promoted, verify_snapshot
from streamlearn.serde import AvroSerde, RegistryUnavailableError, SchemaSource, SerdeError
from streamlearn.serving.exceptions import InvalidExperiment
from streamlearn.serving.experiments import (
    NEWEST,
    Experiment,
    ExperimentBook,
    unserved_models,
)
from streamlearn.serving.follower_progress import FollowerProgress
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore
from streamlearn.serving.version_ledger import VersionLedger
from streamlearn.topology.catalogue import TopicCatalogue

log = logging.getLogger(__name__)
# With Kafka away the follower retries every second, saying so: once per 10 s is enough.
log.addFilter(RepeatedLines())

FETCH_MAX_BYTES = 64 * 1024 * 1024
"""Above ``model.state``'s ``max.message.bytes`` (16 MiB), so any snapshot can be fetched."""
RETRY_S = 1.0
METADATA_TRIES = 50
METADATA_WAIT_S = 0.1
"""A topic not in the cluster's metadata is looked for again that many times, that far
apart (a topic just created reaches every broker's metadata within moments)."""


AlertHook = Callable[[SnapshotRejected], None]
NEWEST_KEY_SUFFIX = NEWEST.encode()
HELD_BACK = "held_back"
REJECTED = "rejected"


class StateFollower:
    """Follows ``model.state`` and ``experiments`` into a store and an experiment book."""

    def __init__(
        self,
        *,
        consumer_config: Mapping[str, Any],
        model_topic: str,
        experiment_topic: str,
        snapshot_serde: AvroSerde,
        experiment_serde: AvroSerde,
        key: SigningKey | Keyring,
        specs: Mapping[str, ModelSpec],
        store: ModelStore,
        book: ExperimentBook,
        metrics: ServingMetrics,
        on_rejected: AlertHook,
    ) -> None:
        self.consumer_config = dict(consumer_config)
        self.model_topic = model_topic
        self.experiment_topic = experiment_topic
        self.snapshot_serde = snapshot_serde
        self.experiment_serde = experiment_serde
        self.key = key
        self.specs = specs
        self.store = store
        self.book = book
        self.metrics = metrics
        self.on_rejected = on_rejected
        self.caught_up = asyncio.Event()
        self.progress = FollowerProgress()
        self._labels = {model_topic: "model.state", experiment_topic: "experiments"}
        """Each topic's Kafka name → the catalogue's (the metrics' label, namespace or not)."""
        for label in self._labels.values():
            metrics.follower_fetch_age.labels(topic=label).set_function(
                functools.partial(self.progress.answer_age_s, label)
            )
            metrics.follower_lag.labels(topic=label).set_function(
                functools.partial(self.progress.lag_records, label)
            )
        self._end: dict[TopicPartition, int] | None = None
        self._versions = VersionLedger()
        # Refusals read while catching up, by record key, not yet said: a later version of
        # the same key may replace them (after a key rotation model.state holds the old
        # key's versions until compaction, and those are no one's concern once the new
        # key's version is read). Said once caught up, if none did.
        self._unsaid: dict[bytes | None, tuple[int, SnapshotRejected]] = {}

    @classmethod
    def from_settings(cls, settings: Any, registry: SchemaSource, **parts: Any) -> StateFollower:
        catalogue = TopicCatalogue.from_settings(settings)
        model_state, experiments = catalogue.topic("model.state"), catalogue.topic("experiments")
        model_topic, experiment_topic = model_state.name, experiments.name
        config = aiokafka_config(
            settings,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            # A long poll: the broker answers as soon as a record arrives, so a longer wait
            # costs no freshness, and an idle worker makes 2 fetches a second instead of
            # 20 (each one a few hundred µs of aiokafka on the request loop).
            fetch_max_wait_ms=500,
            max_partition_fetch_bytes=FETCH_MAX_BYTES,
            fetch_max_bytes=FETCH_MAX_BYTES,
        )
        return cls(
            consumer_config=config,
            model_topic=model_topic,
            experiment_topic=experiment_topic,
            snapshot_serde=model_state.serde(registry),
            experiment_serde=experiments.serde(registry),
            **parts,
        )

    async def run(self) -> None:
        """Follow forever (cancel to stop); reconnects after any Kafka error."""
        while True:
            consumer = AIOKafkaConsumer(**self.consumer_config)
            try:
                await consumer.start()
                await self._assign(consumer)
                await self._follow(consumer)
            except asyncio.CancelledError:
                raise
            except (KafkaError, OSError, SerdeError) as exc:
                self.metrics.follower_errors.inc()
                log.warning("model state follower: %s; retrying in %.0fs", exc, RETRY_S)
            except Exception:
                # A bug must not silently stop model updates: log it loudly and go on.
                self.metrics.follower_errors.inc()
                log.exception("model state follower failed; retrying in %.0fs", RETRY_S)
            finally:
                await consumer.stop()
            await asyncio.sleep(RETRY_S)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        partitions: list[TopicPartition] = []
        for topic in (self.model_topic, self.experiment_topic):
            found: set[int] | None = None
            for _ in range(METADATA_TRIES):
                # aiokafka has no public call for the partitions of a topic it is not
                # subscribed to: read them from a full metadata fetch.
                cluster = await consumer._client.fetch_all_metadata()
                found = cluster.partitions_for_topic(topic)
                if found:
                    break
                await asyncio.sleep(METADATA_WAIT_S)
            if not found:
                # A full metadata answer leaves out the topics the user may not describe.
                user = self.consumer_config.get("sasl_plain_username")
                raise KafkaError(f"topic {topic} not found, or {may_not_describe(user, topic)}")
            partitions += [TopicPartition(topic, p) for p in sorted(found)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        if self._end is None:
            ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            self._end = ends
        await self._check_caught_up(consumer)

    async def _check_caught_up(self, consumer: AIOKafkaConsumer) -> None:
        if self.caught_up.is_set() or self._end is None:
            return
        for tp, end in self._end.items():
            if await consumer.position(tp) < end:
                return
        self._now_caught_up()

    def _now_caught_up(self) -> None:
        """Read to the ends the topics had at start: ready, and the refusals that nothing
        newer replaced while catching up are said."""
        self.caught_up.set()
        unsaid, self._unsaid = list(self._unsaid.values()), {}
        for _, exc in unsaid:
            self.on_rejected(exc)

    def _replaces_unsaid(self, record: Any) -> None:
        """``record`` (loaded, or a tombstone) replaces a refusal of its key read before it
        (a batch is read newest first: an older record loaded after a refusal does not)."""
        refused = self._unsaid.get(record.key)
        if refused is not None and record.offset > refused[0]:
            del self._unsaid[record.key]

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=500)
            for tp, records in batches.items():
                if tp.topic == self.model_topic:
                    await self._snapshots(records)
                else:
                    await self._experiments(records)
            await self._check_caught_up(consumer)
            await self._note_progress(consumer)
            self._retire_expired()

    def _retire_expired(self) -> None:
        """Stop serving the versions whose signing key's grace has ended: a worker started
        now would refuse them (``retired_key``), and what a fleet serves must not depend on
        when each worker started. Counted and alerted as that refusal; the model is then
        served by what is left of it (a held-back version, else the fallback) until a
        version signed with the current key arrives."""
        if not isinstance(self.key, Keyring):
            return
        previous = self.key.previous
        for served in self.store.retire(self.key.clock().timestamp()):
            loaded = served.loaded
            ended = [o.key_id for o in previous if o.until.timestamp() == served.retires_s]
            exc = RetiredKey(
                f"signed with the previous key {ended[0] if ended else None!r}, whose grace "
                f"ended at {datetime.fromtimestamp(served.retires_s or 0, UTC).isoformat()}; "
                "no longer served",
                model_name=loaded.model_name,
                version=loaded.version,
            )
            self.metrics.snapshots_rejected.labels(reason=exc.reason).inc()
            name = loaded.model_name
            self.metrics.model_version.labels(model=name).set(self.store.version(name))
            left = self.store.get(name)
            log.warning("%s; %s", exc, "the fallback answers" if left is None else
                        f"serving v{left.loaded.version}")  # fmt: skip
            self.on_rejected(exc)

    async def _note_progress(self, consumer: AIOKafkaConsumer) -> None:
        """What the broker's last answers say (:class:`FollowerProgress`): when each topic
        was last answered, and how far the positions are from its partitions' ends."""
        behind: dict[str, int] = {}
        for tp in consumer.assignment():
            label = self._labels[tp.topic]
            self.progress.answered(label, consumer.last_poll_timestamp(tp))
            end = consumer.highwater(tp)
            if end is not None:
                behind[label] = behind.get(label, 0) + end - await consumer.position(tp)
        for label, records in behind.items():
            self.progress.behind(label, records)

    async def _snapshots(self, records: list[Any]) -> None:
        # Per key, only the newest record of a batch matters, and the newest promoted one
        # when that one was held back by the gate (catching up on a topic that is not
        # compacted yet loads one or two snapshots per model, not every version), and the
        # newest one before it when it was rejected: a worker started after a bad snapshot
        # serves the verified one before it, as the workers that were running keep doing.
        # Under <model>~newest every version is a held-back one: only its newest matters.
        by_key: dict[bytes | None, list[Any]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        for key, keyed in by_key.items():
            held_back_key = key is not None and key.endswith(NEWEST_KEY_SUFFIX)
            for record in reversed(keyed):
                loaded = await self._snapshot(record)
                if loaded != REJECTED and (held_back_key or loaded != HELD_BACK):
                    break

    async def _snapshot(self, record: Any) -> str | None:
        """Load one record's snapshot if it is newer than what it would replace; returns
        :data:`HELD_BACK` when it was a verified version its gate did not promote, and
        :data:`REJECTED` when it does not decode or verify."""
        name = record.key.decode("utf-8", "replace") if record.key else ""
        if record.value is None:
            self.metrics.snapshots_skipped.labels(reason="tombstone").inc()
            self._replaces_unsaid(record)  # the key was deleted: nothing to serve
            return None
        if name and not self.store.wants(name):
            self.metrics.snapshots_skipped.labels(reason="not_served").inc()
            return None
        if name:
            self.store.saw_snapshot(name)
        try:
            snapshot = await asyncio.to_thread(
                self.snapshot_serde.decode,
                record.value,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        except RegistryUnavailableError:
            raise  # not the record's fault: run() reads the topics again once it answers
        except SerdeError as exc:
            self.metrics.snapshots_rejected.labels(reason="undecodable").inc()
            log.warning("undecodable snapshot at %s: %s", record.offset, exc)
            return REJECTED
        name = str(snapshot.get("model_name", name))
        if not self.store.wants(name):
            self.metrics.snapshots_skipped.labels(reason="not_served").inc()
            return None
        self.store.saw_snapshot(name)
        version = int(snapshot.get("version", 0))
        digest = str(snapshot.get("payload_sha256"))
        if self._versions.conflicts(name, version, digest):
            self._two_writers(snapshot, name, version)
        promoted = is_promoted(snapshot)
        if version <= self.store.newest_version(name) and (
            not promoted or version <= self.store.version(name)
        ):
            self.metrics.snapshots_skipped.labels(reason="not_newer").inc()
            return None if promoted else HELD_BACK  # an older promoted one may still serve
        try:
            loaded = await asyncio.to_thread(load_model, snapshot, self.key, specs=self.specs)
        except SnapshotRejected as exc:
            self.metrics.snapshots_rejected.labels(reason=exc.reason).inc()
            if isinstance(exc, BadSignature | PayloadDigestMismatch):
                self._versions.forget(name, version, digest)  # not the key's: no version
            serving = self.store.version(name)
            log.warning("%s; %s", exc, f"still serving v{serving}" if serving else
                        "nothing loaded yet (the fallback answers)")  # fmt: skip
            if self.caught_up.is_set():
                self.on_rejected(exc)
            elif record.offset > self._unsaid.get(record.key, (-1, exc))[0]:
                # A batch is read newest first: the newest refusal of a key is the one
                # to say (an older one read after it was said instead).
                self._unsaid[record.key] = (record.offset, exc)
            return REJECTED
        # put() checks the versions again: another snapshot may have been swapped in.
        until = self.key.valid_until(snapshot) if isinstance(self.key, Keyring) else None
        served = self.store.put(
            loaded,
            published_s=record.timestamp / 1000,
            promoted=promoted,
            retires_s=None if until is None else until.timestamp(),
        )
        self._replaces_unsaid(record)
        self.metrics.snapshots_loaded.labels(model=name).inc()
        if served.freshness_s is not None:
            self.metrics.snapshot_freshness.observe(served.freshness_s)
        if promoted:
            self.metrics.model_version.labels(model=name).set(self.store.version(name))
            log.info("serving %s v%d", name, loaded.version)
            return None
        log.info("%s v%d held back by its gate: serving it to %s arms only", name, version, NEWEST)
        return HELD_BACK

    def _two_writers(self, snapshot: Mapping[str, Any], name: str, version: int) -> None:
        """A second, different snapshot of ``name`` v``version``: two learners write the
        model. The one read first keeps serving (this one is older or the same number).
        Said only of a signed one: a forged record is no second writer."""
        try:
            verify_snapshot(snapshot, self.key)
        except SnapshotRejected:
            return
        exc = ConflictingVersion(
            "another snapshot was published with this version before: two learners write "
            "this model (the learner agent running in two consumer groups?)",
            model_name=name,
            version=version,
        )
        self.metrics.snapshots_rejected.labels(reason=exc.reason).inc()
        log.error("%s", exc)
        self.on_rejected(exc)

    async def _experiments(self, records: list[Any]) -> None:
        for record in records:
            name = record.key.decode("utf-8", "replace") if record.key else ""
            if record.value is None:
                if self.book.get(name) is not None:
                    log.info("experiment %s deleted", name)
                self.book.remove(name)
                continue
            try:
                value = await asyncio.to_thread(self.experiment_serde.decode, record.value)
                experiment = Experiment.from_record(value)
            except RegistryUnavailableError:
                raise  # read again once the registry answers (see _snapshot)
            except (SerdeError, InvalidExperiment) as exc:
                self.metrics.experiments_invalid.inc()
                log.warning("experiment record at offset %d ignored: %s", record.offset, exc)
                continue
            # Said when it changes what is routed: nothing said a worker had picked one up.
            if not experiment.same_routing_as(self.book.get(experiment.name)):
                log.info("experiment %s: %s", experiment.name, experiment.routing_text())
                # Such an arm's users get the fallback here: only `experiments set` warned
                # (where it ran, whose settings may not be this worker's).
                if experiment.enabled:
                    for unserved in unserved_models(experiment, self.store.configured):
                        log.warning("experiment %s: %s", experiment.name, unserved)
            self.book.put(experiment)
