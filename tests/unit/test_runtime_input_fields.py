"""Steps that read some fields of an input (``Step.input_fields``, runtime/step.py): their
records hold those fields only, the others are read past, and what they write is the same
as from whole records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import pytest

from streamlearn.agents.sessionise import SessioniseStep
from streamlearn.runtime.local import LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.settings import Settings
from tests.unit.test_runtime_plain_inputs import _cluster

pytestmark = pytest.mark.unit


class _Seen(Step):
    name = "seen"
    inputs = ("telemetry.events",)
    outputs = ()
    plain_inputs = True
    input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "telemetry.events": ("user_id", "event_id", "received_ts")
    }

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        self.values = [r.value for r in records]


def test_a_step_gets_the_fields_it_reads_in_schema_order() -> None:
    step = _Seen()
    worker = LocalWorker(_cluster(), step)
    worker.assign([0, 1])
    worker.run()
    assert [list(v) for v in step.values] == [["event_id", "user_id", "received_ts"]] * len(
        step.values
    )
    assert type(step.values[0]["received_ts"]) is int


def test_a_field_the_schema_does_not_have_is_refused_at_start() -> None:
    class Misspelt(_Seen):
        input_fields: ClassVar[Mapping[str, tuple[str, ...]]] = {
            "telemetry.events": ("user_id", "evnt_id")
        }

    with pytest.raises(ValueError, match=r"no fields \['evnt_id'\]"):
        LocalWorker(_cluster(), Misspelt())


def test_sessionise_reads_five_fields_and_writes_what_it_writes_from_whole_events() -> None:
    assert set(SessioniseStep.input_fields["events.clean"]) == {
        "event_id", "user_id", "event_ts", "url", "device_class",
    }  # fmt: skip
    from streamlearn.agents.preprocess import PreprocessStep

    written = {}
    for projected in (True, False):
        cluster = _cluster()
        settings = Settings(max_clock_skew_s=3600, session_gap_s=20)
        for cls in (PreprocessStep, SessioniseStep):
            step_class = cls if projected else type(cls.__name__, (cls,), {"input_fields": {}})
            step = step_class(settings, AgentMetrics())
            worker = LocalWorker(cluster, step, now_ms=0)
            worker.assign([0, 1])
            worker.run(max_records=7)
            worker.revoke([0, 1])
        sessions = cluster.messages("events.sessions")
        written[projected] = [(m.partition, m.key, m.value) for m in sessions]
    assert written[True] == written[False]
    assert written[True], "sessions closed within the run"


def test_the_learner_prepares_the_same_examples_from_the_fields_it_reads() -> None:
    from streamlearn.agents.learner import LearnerStep
    from streamlearn.models.prepared import prepared_example
    from streamlearn.models.synthetic import ClickWorld
    from streamlearn.serde import AvroSerde, InMemoryRegistry

    # process() reads a record only through prepared_example (models/prepared.py); the
    # learning lab's on_scored hook reads served_ts too (test_learning_lab.py runs it).
    fields = LearnerStep.input_fields["training.examples"]
    assert "labelled_ts" not in fields
    assert "label_definition" not in fields
    registry = InMemoryRegistry()
    writer = AvroSerde(registry, "TrainingExample", "t-value")
    whole = AvroSerde(registry, "TrainingExample", "t-value", logical_types=False)
    projected = AvroSerde(
        registry, "TrainingExample", "t-value", logical_types=False, fields=fields
    )
    examples = ClickWorld(seed=5).training_examples(300)
    examples[7] = {**examples[7], "arm": "b", "weight": 2.5}
    for example in examples:
        data = writer.encode(example)
        assert prepared_example(projected.decode(data)) == prepared_example(whole.decode(data))
