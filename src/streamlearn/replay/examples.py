"""Decoded training examples of offset ranges, in offset order, as the learner reads them.

Records that do not decode are skipped and counted, as the runtime skips them for the
learner (it sends them to ``events.rejected``), so a replay learns exactly what the live
learner learned.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from streamlearn.models.prepared import PreparedExample, prepared_example
from streamlearn.replay.positions import PartitionRange
from streamlearn.replay.sources import RecordSource
from streamlearn.serde import AvroSerde, DecodeError

Example = tuple[dict[str, Any], int, int]
"""(decoded ``TrainingExample``, partition, offset)."""
PreparedRecord = tuple[PreparedExample, int, int]
"""(what learning reads of a ``TrainingExample``, partition, offset)."""


@dataclass
class ReadCounts:
    read: int = 0
    undecodable: int = 0


def decoded_examples(
    source: RecordSource,
    serde: AvroSerde,
    topic: str,
    ranges: Iterable[PartitionRange],
    counts: ReadCounts,
) -> Iterator[Example]:
    """The examples of Kafka topic ``topic`` in ``ranges``, read from ``source``."""
    wanted = {r.partition: (r.start, r.end) for r in ranges if r.count}
    for record in source.read(topic, wanted):
        counts.read += 1
        try:
            value = serde.decode(record.value) if record.value is not None else None
        except DecodeError:
            value = None
        if value is None:
            counts.undecodable += 1
            continue
        yield value, record.partition, record.offset


def prepared_records(examples: Iterable[Example]) -> Iterator[PreparedRecord]:
    """``examples`` as the learner reads them (:func:`prepared_example`), in order."""
    for value, partition, offset in examples:
        yield prepared_example(value), partition, offset
