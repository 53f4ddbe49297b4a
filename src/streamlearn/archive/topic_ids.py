"""Which Kafka topic an archived topic's files came from: its topic id.

A topic deleted and recreated under the same name starts its offsets at 0 again. While
the new log is shorter than the old files, the offsets give it away (Kafka's log ends
before the files' next offset); once it has grown past them, offsets alone cannot tell
the two logs apart, and the archiver would write the new log's records after the old
topic's files (and a replay would read both as one log). Kafka gives every topic an id,
a new one when it is recreated, so the archive records the id its files belong to in a
marker, ``<root>/<topic>/_topic_id.json``, beside the topic's hour directories (moving a
topic's directory aside moves its marker with it), written whole or not at all through
the archive's storage (:meth:`ArchiveStore.write_topic_file`).

- the archiver writes the marker when it takes a partition of a topic that has none: a
  new archive, or one written before markers existed (whose files are then taken as the
  live topic's, and it says so), and refuses a live topic of another id;
- a replay from the archive only reads the marker: a different id is refused, a missing
  one is logged (the offsets check is then the only one).

A marker whose topic has no file left (all moved aside) is replaced by the live id: it
describes files, and there are none to protect.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient

from streamlearn.archive.exceptions import ArchiveError
from streamlearn.archive.storage import ArchiveStore
from streamlearn.kafka_clients import confluent_config
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

MARKER_NAME = "_topic_id.json"
DESCRIBE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class OtherTopic:
    """The archive's files of ``topic`` are of topic id ``recorded``, Kafka's topic of
    that name has id ``live``."""

    topic: str
    recorded: str
    live: str
    root: str

    def message(self, remedy: str) -> str:
        return (
            f"{self.topic}: the archive's files at {self.root} belong to topic id "
            f"{self.recorded}, but Kafka's {self.topic} has topic id {self.live}: the topic "
            f"was deleted and recreated since those files were written, and its offsets "
            f"start again at 0, so the two logs would be mixed. {remedy}"
        )


def live_topic_id(settings: Settings, topic: str, admin: AdminClient | None = None) -> str:
    """Kafka's id of ``topic`` (base64, as Kafka's tools print it); ``admin``: a client to
    reuse (a running archiver asks every few seconds)."""
    admin = admin or AdminClient(confluent_config(settings))
    try:
        future = admin.describe_topics(TopicCollection([topic]))[topic]
        return str(future.result(timeout=DESCRIBE_TIMEOUT_S).topic_id)
    except (KafkaException, TimeoutError) as exc:
        reason = exc.args[0] if exc.args else f"no answer within {DESCRIBE_TIMEOUT_S:.0f} s"
        raise ArchiveError(
            f"{topic}: could not ask Kafka for the topic's id, which says whether the "
            f"archive's files are this topic's: {reason}"
        ) from exc


def recorded_topic_id(store: ArchiveStore, topic: str) -> str | None:
    """The topic id the archive's files of ``topic`` belong to (None: no marker)."""
    data = store.read_topic_file(topic, MARKER_NAME)
    if data is None:
        return None
    try:
        recorded = json.loads(data)["topic_id"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ArchiveError(
            f"{topic}: the archive's topic id marker {store.describe()}/{topic}/{MARKER_NAME} "
            f"is not a marker ({exc}); restore it, or delete it to have the archiver record "
            f"the live topic's id"
        ) from None
    if not isinstance(recorded, str):
        raise ArchiveError(f"{topic}: the archive's topic id marker holds no id: {recorded!r}")
    return recorded


def other_topic(store: ArchiveStore, topic: str, live: str) -> OtherTopic | None:
    """The archive's files of ``topic`` are another topic's (by id), or None: the same
    topic, or no marker to tell (read only: for readers)."""
    recorded = recorded_topic_id(store, topic)
    if recorded is None or recorded == live:
        return None
    return OtherTopic(topic, recorded, live, store.describe())


def check_claim(store: ArchiveStore, topic: str, live: str, *, has_files: bool) -> bool:
    """For the archiver, before it writes ``topic``'s files: refuse files of another id
    than ``live`` (:class:`ArchiveError`). True: the marker is to be written with
    :func:`record_topic_id` (none yet, or no file left under another id's), once the
    partitions' offsets agree with the files too: an archive written before markers
    whose files go past Kafka's log end must not have the recreated topic's id recorded."""
    recorded = recorded_topic_id(store, topic)
    if recorded == live:
        return False
    if recorded is not None and has_files:
        found = OtherTopic(topic, recorded, live, store.describe())
        raise ArchiveError(
            "archive: "
            + found.message(
                f"Move the topic's old directory ({store.describe()}/{topic}, its "
                f"{MARKER_NAME} with it) out of the root, or archive to a new --root"
            )
        )
    if recorded is None and has_files:
        log.warning(
            "archive: %s: the archive's files carry no topic id (written before the "
            "archive recorded one): taking them as the files of Kafka's topic %s",
            topic,
            live,
        )
    elif recorded is not None:
        log.info(
            "archive: %s: no file left of topic id %s; recording the live id %s",
            topic,
            recorded,
            live,
        )
    return True


def record_topic_id(store: ArchiveStore, topic: str, live: str) -> None:
    """Record ``live`` as the id of the topic ``topic``'s files belong to."""
    marker = {"topic": topic, "topic_id": live}
    store.write_topic_file(topic, MARKER_NAME, json.dumps(marker).encode() + b"\n")
