"""Decoding in a second process (serde/decoding_process.py, StepInputs.decoded_chunks): the
records, the rejections and their order are exactly those of decoding in the step's own
process, whatever the child does (declines, dies, is abandoned mid-batch)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streamlearn.agents.learner import LearnerStep
from streamlearn.models.prepared import prepared_example
from streamlearn.models.synthetic import ClickWorld
from streamlearn.runtime.exceptions import RuntimeConfigurationError
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.records import CHUNK, FIRST_CHUNK, StepInputs, StepOutputs, step_topics
from streamlearn.serde import AvroSerde, DecodeError, InMemoryRegistry
from streamlearn.serde.decoding_process import DecodingProcess, DecodingProcessError, decode_chunk
from streamlearn.serde.wire import framed_schema_id
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue

pytestmark = pytest.mark.unit

TOPIC = "training.examples"
FIELDS = LearnerStep.input_fields[TOPIC]
PREPARE = LearnerStep.input_preparations[TOPIC]


@dataclass(frozen=True)
class _Message:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


def _values(count: int, registry: InMemoryRegistry) -> list[bytes | None]:
    """Framed TrainingExamples with poison among them: damaged bodies, a truncated one, an
    unknown schema id, a bad magic byte, a null."""
    writer = AvroSerde.for_topic(registry, TOPIC, "TrainingExample")
    values: list[bytes | None] = [
        writer.encode(e) for e in ClickWorld(seed=3).training_examples(count)
    ]
    rng = random.Random(5)
    for index in rng.sample(range(count), 12):
        value = values[index]
        assert value is not None
        cut = rng.randrange(6, len(value))
        values[index] = value[:cut] + bytes([rng.randrange(256)]) + value[cut + 1 :]
    values[7] = (values[7] or b"")[:20]
    values[11] = b"\x00\x00\x00\x03\xe7" + (values[11] or b"")[5:]
    values[13] = b"\x01" + (values[13] or b"")[1:]
    values[17] = None
    return values


class _Rejections:
    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes]] = []

    def __call__(self, topic: str, partition: int, key: bytes | None, value: bytes) -> None:
        self.records.append((topic, partition, value))


def _inputs(
    registry: InMemoryRegistry, preparations: dict[str, str] | None = None
) -> tuple[StepInputs, StepOutputs, _Rejections]:
    catalogue = TopicCatalogue.from_settings(Settings())
    inputs, writers, names = step_topics(
        catalogue, registry, [TOPIC], [], lambda name: 3, logical_types=False,
        fields={TOPIC: FIELDS}, preparations=preparations,
    )  # fmt: skip
    sink = _Rejections()
    outputs = StepOutputs(writers, sink, "learner", AgentMetrics(), lambda: 0, names)
    return inputs, outputs, sink


def _decoded(
    inputs: StepInputs, outputs: StepOutputs, messages: list[_Message], chunked: bool
) -> tuple[list[list[Any]], list[Any]]:
    if chunked:
        chunks = list(inputs.decoded_chunks(TOPIC, 1, messages, outputs))
    else:
        chunks = [inputs.decode_many(TOPIC, 1, messages, outputs)]
    return chunks, [(r.offset, r.key, r.value, r.raw) for chunk in chunks for r in chunk]


def test_the_child_decodes_what_the_serde_decodes_and_leaves_the_rest() -> None:
    registry = InMemoryRegistry()
    values = _values(400, registry)
    serde = AvroSerde.for_topic(registry, TOPIC, "TrainingExample", logical_types=False,
                                fields=FIELDS)  # fmt: skip
    _ = serde.schema_id
    plan = serde.decoding_plan()
    assert plan is not None
    decoder = plan.decoder()
    assert decoder is not None
    answered = decode_chunk(dict.fromkeys(plan.schema_ids, decoder), values)
    left = 0
    for value, record in zip(values, answered, strict=True):
        if record is None:
            left += 1  # the parent decodes it (or rejects it) itself
        else:
            assert record == serde.decode(value)
    assert 5 <= left <= 17, "the poison, not the good records, is left to the parent"


def test_no_plan_for_records_with_timestamps_as_datetimes() -> None:
    serde = AvroSerde.for_topic(InMemoryRegistry(), TOPIC, "TrainingExample")
    _ = serde.schema_id
    assert serde.decoding_plan() is None


@pytest.mark.parametrize("count", [FIRST_CHUNK, FIRST_CHUNK + 1, 3 * CHUNK + 50])
def test_chunks_hold_the_records_and_rejections_of_one_batch_in_order(count: int) -> None:
    registry = InMemoryRegistry()
    messages = [_Message(100 + i, b"ctr", v) for i, v in enumerate(_values(count, registry))]
    alone, alone_outputs, alone_rejected = _inputs(registry)
    helped, helped_outputs, helped_rejected = _inputs(registry)
    assert helped.start_decoding_process() is not None
    try:
        _, expected = _decoded(alone, alone_outputs, messages, chunked=False)
        chunks, records = _decoded(helped, helped_outputs, messages, chunked=True)
    finally:
        helped.close()
    assert records == expected
    assert helped_rejected.records == alone_rejected.records
    assert len(alone_rejected.records) >= 5
    assert len(chunks) == (1 if count <= FIRST_CHUNK else 2 + (count - FIRST_CHUNK - 1) // CHUNK)


def test_a_child_that_dies_mid_batch_leaves_the_rest_to_this_process() -> None:
    registry = InMemoryRegistry()
    messages = [_Message(i, None, v) for i, v in enumerate(_values(4 * CHUNK, registry))]
    alone, alone_outputs, _ = _inputs(registry)
    helped, helped_outputs, _ = _inputs(registry)
    process = helped.start_decoding_process()
    assert process is not None
    _, expected = _decoded(alone, alone_outputs, messages, chunked=False)
    taken = []
    for index, chunk in enumerate(helped.decoded_chunks(TOPIC, 1, messages, helped_outputs)):
        taken.extend((r.offset, r.key, r.value, r.raw) for r in chunk)
        if index == 1:
            os.kill(process.pid, signal.SIGKILL)
    assert taken == expected
    # From then on the step's own process decodes, in one chunk.
    chunks, records = _decoded(helped, helped_outputs, messages, chunked=True)
    assert len(chunks) == 1
    assert records == expected


def test_a_batch_abandoned_midway_does_not_shift_the_next_ones_answers() -> None:
    registry = InMemoryRegistry()
    values = _values(3 * CHUNK, registry)
    first = [_Message(i, None, v) for i, v in enumerate(values)]
    second = [_Message(i, None, v) for i, v in enumerate(reversed(values))]
    alone, alone_outputs, _ = _inputs(registry)
    helped, helped_outputs, _ = _inputs(registry)
    assert helped.start_decoding_process() is not None
    try:
        chunks = helped.decoded_chunks(TOPIC, 1, first, helped_outputs)
        next(chunks)
        next(chunks)  # a chunk is still pending in the child when the step raises
        chunks.close()
        _, records = _decoded(helped, helped_outputs, second, chunked=True)
    finally:
        helped.close()
    assert records == _decoded(alone, alone_outputs, second, chunked=False)[1]


def test_the_child_leaves_when_its_parent_closes_it() -> None:
    registry = InMemoryRegistry()
    serde = AvroSerde.for_topic(registry, TOPIC, "TrainingExample", logical_types=False)
    _ = serde.schema_id
    plan = serde.decoding_plan()
    assert plan is not None
    value = AvroSerde.for_topic(registry, TOPIC, "TrainingExample").encode(
        ClickWorld(seed=3).training_examples(1)[0]
    )
    process = DecodingProcess({TOPIC: plan})
    process.submit(TOPIC, [value])
    assert process.result() == [serde.decode(value)]
    process.close()
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)


def test_the_child_gets_none_of_the_agents_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMLEARN_MODEL_SIGNING_KEY", "not-for-the-child")
    serde = AvroSerde.for_topic(InMemoryRegistry(), TOPIC, "TrainingExample", logical_types=False)
    _ = serde.schema_id
    plan = serde.decoding_plan()
    assert plan is not None
    process = DecodingProcess({TOPIC: plan})
    try:
        environment = Path(f"/proc/{process.pid}/environ").read_bytes().split(b"\0")
    finally:
        process.close()
    assert not [entry for entry in environment if entry.startswith(b"STREAMLEARN_")]


def test_a_child_that_stops_reading_is_given_up_on_not_waited_for_forever() -> None:
    serde = AvroSerde.for_topic(InMemoryRegistry(), TOPIC, "TrainingExample", logical_types=False)
    _ = serde.schema_id
    plan = serde.decoding_plan()
    assert plan is not None
    process = DecodingProcess({TOPIC: plan}, timeout_s=0.5)
    os.kill(process.pid, signal.SIGSTOP)

    def flood() -> None:
        for _ in range(512):  # far more than a pipe holds
            process.submit(TOPIC, [b"\x00" * 8192])

    try:
        with pytest.raises(DecodingProcessError, match="read nothing"):
            flood()
        with pytest.raises(DecodingProcessError, match="no answer"):
            process.result()
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.close()
    with pytest.raises(DecodingProcessError, match="closed"):
        process.submit(TOPIC, [b""])


def _plan(registry: InMemoryRegistry) -> tuple[AvroSerde, Any]:
    serde = AvroSerde.for_topic(registry, TOPIC, "TrainingExample", logical_types=False,
                                fields=FIELDS)  # fmt: skip
    _ = serde.schema_id
    plan = serde.decoding_plan()
    assert plan is not None
    return serde, plan


def test_the_child_answers_each_record_prepared() -> None:
    registry = InMemoryRegistry()
    values = _values(300, registry)
    serde, plan = _plan(registry)
    process = DecodingProcess({TOPIC: plan}, preparations={TOPIC: PREPARE})
    try:
        process.submit(TOPIC, values)
        answered = process.result()
    finally:
        process.close()
    prepared = [(value, answer) for value, answer in zip(values, answered, strict=True) if answer]
    assert len(prepared) >= 280
    for value, answer in prepared:
        assert answer == prepared_example(serde.decode(value))


def test_a_record_its_preparation_raises_on_is_left_to_the_parent() -> None:
    registry = InMemoryRegistry()
    values = _values(60, registry)
    serde, plan = _plan(registry)
    decoder = plan.decoder()
    assert decoder is not None

    def prepare(record: dict[str, Any]) -> Any:
        if record["request_id"].endswith("7"):
            raise ValueError("not this one")
        return prepared_example(record)

    answered = decode_chunk(dict.fromkeys(plan.schema_ids, decoder), values, prepare)
    prepared = raised = 0
    for value, answer in zip(values, answered, strict=True):
        if answer is not None:
            assert answer == prepared_example(serde.decode(value))
            prepared += 1
        elif value is not None and framed_schema_id(value) in plan.schema_ids:
            try:
                record = serde.decode(value)
            except DecodeError:
                continue  # poison: the parent rejects it
            assert record["request_id"].endswith("7")
            raised += 1
    assert prepared >= 40
    assert raised >= 4  # r-7, r-17, r-27, ... among the good records


def test_a_child_that_cannot_import_the_preparation_leaves_the_work_to_the_parent() -> None:
    registry = InMemoryRegistry()
    _, plan = _plan(registry)
    process = DecodingProcess({TOPIC: plan}, preparations={TOPIC: "streamlearn.no_such:thing"})
    try:
        process.submit(TOPIC, [None])
        with pytest.raises(DecodingProcessError, match="left"):
            process.result()
    finally:
        process.close()


@pytest.mark.parametrize("count", [FIRST_CHUNK, 3 * CHUNK + 50])
def test_a_prepared_input_reaches_the_step_prepared_wherever_it_was_decoded(count: int) -> None:
    registry = InMemoryRegistry()
    messages = [_Message(100 + i, b"ctr", v) for i, v in enumerate(_values(count, registry))]
    plain, plain_outputs, _ = _inputs(registry)
    alone, alone_outputs, alone_rejected = _inputs(registry, {TOPIC: PREPARE})
    helped, helped_outputs, helped_rejected = _inputs(registry, {TOPIC: PREPARE})
    assert helped.start_decoding_process() is not None
    try:
        _, decoded = _decoded(plain, plain_outputs, messages, chunked=False)
        _, expected = _decoded(alone, alone_outputs, messages, chunked=False)
        _, records = _decoded(helped, helped_outputs, messages, chunked=True)
    finally:
        helped.close()
    assert records == expected
    assert [value for _, _, value, _ in expected] == [
        prepared_example(value) for _, _, value, _ in decoded
    ]
    assert helped_rejected.records == alone_rejected.records
    assert len(alone_rejected.records) >= 5


@pytest.mark.parametrize(
    ("preparations", "problem"),
    [
        ({TOPIC: "streamlearn.models.online:no_such_function"}, "not a function"),
        ({TOPIC: "streamlearn.models.online.prepared_example"}, "package.module:function"),
        ({TOPIC: "streamlearn.no_such_module:thing"}, "No module"),
        ({"training.other": PREPARE}, "not read"),
    ],
)
def test_a_preparation_that_cannot_be_found_stops_the_step_at_start_up(
    preparations: dict[str, str], problem: str
) -> None:
    with pytest.raises(RuntimeConfigurationError, match=problem):
        _inputs(InMemoryRegistry(), preparations)


def test_the_learners_preparation_does_not_load_river_into_the_child() -> None:
    # River, numpy and scipy would add ~85 MB to the decoding process for nothing.
    code = (
        "import sys; from streamlearn.serde.decoding_process import import_preparation; "
        f"import_preparation({PREPARE!r}); "
        "print(sorted(m for m in ('river', 'numpy', 'scipy') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.strip() == "[]"
