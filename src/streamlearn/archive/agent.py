"""The archive agent: Kafka topics → time-bucketed files, each record exactly once.

One confluent-kafka consumer in a group (``<prefix>streamlearn-archive`` by default,
cooperative-sticky assignment, no automatic commits) hands each owned partition's records
to its :class:`~streamlearn.archive.partition.PartitionArchiver`. The files are the
truth, the committed offsets a courtesy for lag monitoring:

- **taking a partition** (start, rebalance): its final files are listed, refused when
  they belong to another topic id than Kafka's topic of that name (a topic deleted and
  recreated: :mod:`~streamlearn.archive.topic_ids`), the consumer is positioned after
  the highest archived offset (:func:`resume_points`), whatever the group committed, and
  in-progress files left by a dead worker are deleted;
- **a file completes**: it is fsynced and renamed (local) or uploaded (object storage),
  and only then is the offset after its last record committed;
- **losing a partition** (revocation, lost membership, an error): its in-progress file is
  deleted; the next owner reads those records again and, cutting files by the same rules,
  writes the same files;
- **a graceful stop** (``stop`` set): every in-progress file is made final and committed
  before the consumer leaves the group, so nothing read waits for the next start.

Every crash point: before a file is final, nothing of it is visible and the records are
read again after the last final file; after it is final and before the commit, the
restart resumes after the file (from its name), not from the older committed offset; an
interrupted upload leaves no object. Two workers can only both write a range if one of
them lost the partition without noticing (a zombie): records then go into files of the
same names and contents, and a file replaced by its copy adds nothing (an idle close can
cut differently; :func:`~streamlearn.archive.reader.read_archive` yields each offset once
and ``archive ls`` reports overlaps).

Errors that are not a record's fault (the registry unreachable, an upload failing) stop
the agent: the supervisor restarts it and it resumes from the files.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from streamlearn.archive.config import ArchiveConfig, default_staging_dir
from streamlearn.archive.decode import WriterDecoder, WriterSchemaSource
from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.group_roots import archive_client_id, refuse_other_roots
from streamlearn.archive.layout import ResumePoint, resume_points
from streamlearn.archive.metrics import ArchiveMetrics
from streamlearn.archive.partition import Completed, PartitionArchiver
from streamlearn.archive.retention import past_retention
from streamlearn.archive.storage import ArchiveStore
from streamlearn.archive.topic_ids import OtherTopic, check_claim, live_topic_id, record_topic_id
from streamlearn.archive.topics import select_topics
from streamlearn.kafka_clients import confluent_config
from streamlearn.serde.registry_client import RegistryClient
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.namespace import Namespace

log = logging.getLogger(__name__)

IDLE_CHECK_EVERY_S = 0.5
TOPIC_ID_CHECK_EVERY_S = 10.0
"""How often a running worker asks whether its topics were recreated: files are final
after an idle close (60 s by default), so a recreated topic's records are mostly still in
in-progress files (abandoned) when it notices."""
POLL_TIMEOUT_S = 0.2
REQUEST_TIMEOUT_S = 10.0


def _storage_errors() -> tuple[type[Exception], ...]:
    """What a store that refuses or does not answer raises: s3fs makes an OSError of the
    server's refusals and leaves botocore's own errors (no connection, no credentials) as
    they are. Imported when an error is being matched: a local root needs no botocore."""
    from botocore.exceptions import BotoCoreError

    return (OSError, BotoCoreError)


def _start_label(start_at: str, tp: TopicPartition) -> str:
    """How a partition without files starts, for the log line."""
    return start_at if tp.offset < 0 else f"{tp.offset} ({start_at})"


def refuse_other_generation(
    topic: str, partition: int, resume_at: int, log_end: int, *, committed: bool = False
) -> ArchiveError:
    """The archive's files of a partition go on at ``resume_at`` but Kafka's log ends
    before it: the topic was deleted and recreated (or the broker's data wiped) while the
    root stayed. Seeking there, the consumer would reset to the new log's start and every
    record below ``resume_at`` would be read and never reach a file (nor could the
    files tell the two logs' offsets apart for a replay). ``committed``: ``resume_at`` is
    the group's committed offset (``--start-at latest``, no files yet)."""
    if committed:
        return ArchiveError(
            f"{topic}[{partition}]: the group committed offset {resume_at} but Kafka's log "
            f"ends at {log_end}: the topic was recreated (or Kafka's data wiped) since; "
            f"give this archiver a new --group (or delete the group's offsets)"
        )
    return ArchiveError(
        f"{topic}[{partition}]: the archive's files go on at offset {resume_at} but Kafka's "
        f"log ends at {log_end}: the topic was recreated (or Kafka's data wiped) since those "
        f"files were written, and its new records would never be archived. Move the "
        f"topic's old files out of the root (they belong to the old topic), or archive "
        f"to a new --root"
    )


class ArchiveAgent:
    """A worker of the archive group. :meth:`run` until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        config: ArchiveConfig,
        *,
        metrics: ArchiveMetrics | None = None,
        registry: WriterSchemaSource | None = None,
        topic_id: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        self.topic_id = topic_id or self._live_topic_id
        """Kafka name → Kafka's id of the topic now (:mod:`~streamlearn.archive.topic_ids`)."""
        self.topic_id_every_s = TOPIC_ID_CHECK_EVERY_S
        self._admin: AdminClient | None = None
        self._taken_ids: dict[str, str] = {}
        """Kafka name → the topic id its partitions were taken under (checked as it runs)."""
        self.config = config
        self.metrics = metrics or ArchiveMetrics()
        catalogue = TopicCatalogue.from_settings(settings)
        self.topics = {t.name: t.logical for t in select_topics(config.topics, catalogue)}
        """Kafka name → topology name of every archived topic."""
        self.store = ArchiveStore(
            config.root,
            storage_options=config.storage_options,
            staging_dir=config.staging_dir
            or default_staging_dir(
                settings, config.root, Namespace(settings.topic_prefix).group(config.group)
            ),
        )
        self._registry = registry
        self.decoder = WriterDecoder(registry or RegistryClient.for_settings(settings))
        self.group = Namespace(settings.topic_prefix).group(config.group)
        self.client_id = archive_client_id(config.root, config.storage_options)
        """Names the root: a worker of another root in the group is refused (group_roots)."""
        self.archivers: dict[tuple[str, int], PartitionArchiver] = {}
        self.last_beat: float | None = None
        """When the consume loop last went round (monotonic; the liveness probe)."""
        self.rebalancing = False
        self.started = False
        """The consumer joined the group at least once (the readiness probe)."""
        self._warned_topics: set[str] = set()

    def consumer_config(self) -> dict[str, Any]:
        return confluent_config(
            self.settings,
            **{
                "group.id": self.group,
                "client.id": self.client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Only for a position Kafka no longer has (retention removed records that
                # were never archived: counted and logged on assignment).
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "cooperative-sticky",
                "session.timeout.ms": int(self.settings.consumer_session_timeout_s * 1000),
                "isolation.level": "read_committed",
            },
        )

    def run(self, stop: threading.Event) -> None:
        """Archive until ``stop`` is set, then make in-progress files final and leave the
        group. Raises what the agent cannot handle, after abandoning in-progress files."""
        if self.store.is_local:  # made at once: readers refuse a root that is not there
            self.store.make_root()
        else:  # a bucket must be there already
            self.store.require_root()
        refuse_other_roots(self.settings, self.group, self.client_id)
        consumer = Consumer(self.consumer_config())
        log.info(
            "archiving %s to %s as %s (group %s)",
            ", ".join(sorted(self.topics.values())),
            self.store.describe(),
            self.config.format,
            self.group,
        )
        consumer.subscribe(
            sorted(self.topics),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        next_idle_check = time.monotonic() + IDLE_CHECK_EVERY_S
        next_expiry = time.monotonic()
        next_id_check = time.monotonic() + self.topic_id_every_s
        stopped = False
        try:
            while not stop.is_set():
                messages = consumer.consume(self.config.batch_size, timeout=POLL_TIMEOUT_S)
                self.last_beat = time.monotonic()
                if messages:
                    self._archive(consumer, messages)
                if self.last_beat >= next_idle_check:
                    next_idle_check = self.last_beat + IDLE_CHECK_EVERY_S
                    for archiver in list(self.archivers.values()):
                        done = archiver.close_if_idle()
                        if done is not None:
                            self._completed(consumer, archiver, done)
                if self.last_beat >= next_id_check:
                    next_id_check = self.last_beat + self.topic_id_every_s
                    self._check_topics_not_recreated()
                if self.config.retention_hours is not None and self.last_beat >= next_expiry:
                    next_expiry = self.last_beat + self.config.retention_every_s
                    self._expire(self.config.retention_hours)
            self._finish_all(consumer)
            stopped = True
        finally:
            if not stopped:
                log.warning("archive: stopping on an error; abandoning in-progress files")
            self._abandon(list(self.archivers))
            consumer.close()
            if self._registry is None and isinstance(self.decoder.registry, RegistryClient):
                self.decoder.registry.close()

    def _live_topic_id(self, topic: str) -> str:
        if self._admin is None:
            self._admin = AdminClient(confluent_config(self.settings))
        return live_topic_id(self.settings, topic, self._admin)

    def _check_topics_not_recreated(self) -> None:
        """Stop when an owned topic was deleted and recreated while this worker ran: the
        consumer goes on (or librdkafka resets it to the new log's start) and the new
        log's records would go into files after the old topic's. An id that cannot be
        asked now (a deleted topic not yet recreated, Kafka busy) waits for the next turn."""
        owned = {topic for topic, _ in self.archivers}
        for topic in sorted(owned & set(self._taken_ids)):
            try:
                live = self.topic_id(topic)
            except ArchiveError as exc:
                log.warning("archive: %s", exc)
                continue
            taken = self._taken_ids[topic]
            if live != taken:
                found = OtherTopic(topic, taken, live, self.store.describe())
                raise ArchiveError(
                    "archive: "
                    + found.message(
                        "Stopped before the new log's records reached a file; on restart "
                        f"the worker refuses the old files: move {self.store.describe()}/"
                        f"{topic} out of the root, or archive to a new --root"
                    )
                )

    def _expire(self, retention_hours: float) -> None:
        """Delete the files of this worker's partitions past the retention (one listing per
        topic). A failure is logged and tried again at the next turn: retention waits."""
        owned = set(self.archivers)
        cutoff_ms = int((time.time() - retention_hours * 3600) * 1000)
        for topic in sorted({topic for topic, _ in owned}):
            try:
                files = [f for f in self.store.list_files(topic) if (f.topic, f.partition) in owned]
                for file in past_retention(files, cutoff_ms):
                    self.store.delete(file)
                    self.metrics.deleted.labels(self.topics[topic]).inc()
            except _storage_errors() as exc:
                log.warning("archive: deleting %s's files past retention failed: %s", topic, exc)

    def _finish_all(self, consumer: Consumer) -> None:
        """A graceful stop: every open file final, then committed (an error leaves the
        rest to be abandoned)."""
        for key in sorted(self.archivers):
            archiver = self.archivers[key]
            done = archiver.finish()
            if done is not None:
                self._completed(consumer, archiver, done)

    def _archive(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        batches: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._message_error(error)
                continue
            key = (message.topic() or "", message.partition() or 0)
            batch = batches.get(key)
            if batch is None:
                batches[key] = batch = []
            batch.append(message)
        for key, batch in batches.items():
            archiver = self.archivers.get(key)
            if archiver is None:  # revoked since it was fetched
                continue
            for done in archiver.add(batch):
                self._completed(consumer, archiver, done)

    def _message_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            text = error.str()
            if text not in self._warned_topics:
                self._warned_topics.add(text)
                log.warning("archive: %s (create it with `streamlearn topics apply`)", text)
            return
        log.warning("archive: consumer error: %s", error.str())

    def _completed(self, consumer: Consumer, archiver: PartitionArchiver, done: Completed) -> None:
        """A file is final: count it, then commit the offset after it."""
        self.metrics.completed(self.topics[archiver.topic], done)
        log.debug("archive: %s final (%s)", done.file.path, done.reason.value)
        try:
            consumer.commit(
                offsets=[TopicPartition(archiver.topic, archiver.partition, done.file.next_offset)],
                asynchronous=False,
            )
        except KafkaException as exc:
            # The files are the truth; a lost commit only makes the group's lag look larger.
            log.warning("archive: commit after %s failed: %s", done.file.name, exc)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.rebalancing = True
        try:
            points: dict[tuple[str, int], ResumePoint] = {}
            # topic → live id to record once its partitions' offsets agree with the files.
            unrecorded: dict[str, str] = {}
            for topic in sorted({tp.topic for tp in partitions}):
                files = self.store.list_files(topic)
                # Offsets cannot tell a recreated topic that grew past the old files from
                # the old one: its id can (topic_ids).
                live = self._taken_ids[topic] = self.topic_id(topic)
                if check_claim(self.store, topic, live, has_files=bool(files)):
                    unrecorded[topic] = live
                points.update(resume_points(files))
            committed = self._committed(consumer, partitions)
            pinned: list[TopicPartition] = []
            for tp in partitions:
                key = (tp.topic, tp.partition)
                removed = self.store.discard_partials(tp.topic, tp.partition)
                point = points.get(key)
                known = None if committed is None else committed.get(key)
                if point is not None:
                    tp.offset = point.next_offset
                    self._check_retention(consumer, tp, point.next_offset)
                elif self.config.start_at == "earliest":
                    tp.offset = OFFSET_BEGINNING
                else:
                    tp.offset = self._latest_start(consumer, tp, committed, pinned)
                    known = None  # followed: no disagreement with the files to warn about
                resume_at = point.next_offset if point is not None else 0
                if known is not None and known > resume_at:
                    log.warning(
                        "archive: %s[%d]: the group committed offset %d but the archive's "
                        "files end before %d (files removed, or another root?); following "
                        "the files",
                        tp.topic,
                        tp.partition,
                        known,
                        resume_at,
                    )
                self.archivers[key] = PartitionArchiver(
                    tp.topic,
                    tp.partition,
                    point,
                    store=self.store,
                    decoder=self.decoder,
                    fmt=self.config.format,
                    limits=self.config.limits,
                    compression=self.config.compression,
                )
                log.info(
                    "archive: took %s[%d] at %s%s",
                    tp.topic,
                    tp.partition,
                    point.next_offset if point else _start_label(self.config.start_at, tp),
                    f" ({removed} stale in-progress file(s) deleted)" if removed else "",
                )
            for topic, live in sorted(unrecorded.items()):
                record_topic_id(self.store, topic, live)
            consumer.incremental_assign(partitions)
            self._pin(consumer, pinned)
            self.metrics.partitions.set(len(self.archivers))
            self.started = True
        finally:
            self.rebalancing = False

    def _latest_start(
        self,
        consumer: Consumer,
        tp: TopicPartition,
        committed: dict[tuple[str, int], int] | None,
        pinned: list[TopicPartition],
    ) -> int:
        """Where a partition without files starts with ``--start-at latest``: where the
        group first took it. Its first owner commits the log's end as it takes it (added
        to ``pinned``), and a later owner (after a crash, a rebalance) starts at that
        committed offset: starting at the end again would skip the records a previous
        owner had only in in-progress files, and everything produced in between.
        ``committed`` is None when the group's offsets could not be read: the partition
        then starts at the end, unpinned (pinning would overwrite an earlier owner's)."""
        if committed is None:
            log.warning(
                "archive: %s[%d]: the group's committed offsets are unknown: starting at "
                "the log's end, not pinned",
                tp.topic,
                tp.partition,
            )
            return int(OFFSET_END)
        start = committed.get((tp.topic, tp.partition))
        if start is not None:
            self._check_retention(consumer, tp, start, committed=True)
            return start
        try:
            _, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=REQUEST_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            log.warning(
                "archive: %s[%d]: the log's end is unknown (%s): starting at its end when "
                "the consumer finds it, not pinned for the next owner",
                tp.topic,
                tp.partition,
                exc,
            )
            return int(OFFSET_END)
        pinned.append(TopicPartition(tp.topic, tp.partition, high))
        return int(high)

    def _pin(self, consumer: Consumer, pinned: list[TopicPartition]) -> None:
        """Commit where partitions without files started (see :meth:`_latest_start`)."""
        if not pinned:
            return
        try:
            consumer.commit(offsets=pinned, asynchronous=False)
        except KafkaException as exc:
            log.warning(
                "archive: committing the start of %d partition(s) failed: %s (a next "
                "owner before their first file would start at the log's end)",
                len(pinned),
                exc,
            )

    def _committed(
        self, consumer: Consumer, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int] | None:
        """The group's committed offsets (None: unavailable): where ``--start-at latest``
        started, else only to warn when they disagree with the files."""
        try:
            found = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions],
                timeout=REQUEST_TIMEOUT_S,
            )
        except KafkaException as exc:
            log.debug("archive: committed offsets unavailable: %s", exc)
            return None
        return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}

    def _check_retention(
        self, consumer: Consumer, tp: TopicPartition, resume_at: int, *, committed: bool = False
    ) -> None:
        """Whether Kafka still has ``resume_at``: records before the log's start left it
        unarchived (counted); a log that ends before ``resume_at`` is not the log the
        files came from, and is refused (:func:`refuse_other_generation`)."""
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=REQUEST_TIMEOUT_S, cached=False
            )
        except KafkaException as exc:
            log.debug("archive: watermarks of %s[%d] unavailable: %s", tp.topic, tp.partition, exc)
            return
        if high < resume_at:
            raise refuse_other_generation(
                tp.topic, tp.partition, resume_at, high, committed=committed
            )
        if low > resume_at:
            self.metrics.expired.labels(self.topics[tp.topic]).inc(low - resume_at)
            log.warning(
                "archive: %s[%d]: offsets %d-%d left Kafka before they were archived",
                tp.topic,
                tp.partition,
                resume_at,
                low - 1,
            )

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._abandon([(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.warning("archive: lost %d partition(s) (session timed out)", len(partitions))
        self._abandon([(tp.topic, tp.partition) for tp in partitions])

    def _abandon(self, keys: list[tuple[str, int]]) -> None:
        for key in keys:
            archiver = self.archivers.pop(key, None)
            if archiver is None:
                continue
            dropped = archiver.abandon()
            if dropped:
                self.metrics.abandoned.labels(self.topics[archiver.topic]).inc(dropped)
        self.metrics.partitions.set(len(self.archivers))
