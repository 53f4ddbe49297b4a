"""The lab: the simulated world as the topics the agents read, in virtual time, without Kafka.

Evaluating an agent that watches the data (a monitor) needs the records it would read in
production, with changes injected at known seconds (:mod:`~streamlearn.simulate.changes`),
and many runs of them: a broker and real time would make each run last as long as it
simulates. The lab produces those records in memory instead, from the same
:class:`~streamlearn.simulate.traffic.Traffic` the live simulator sends, and runs the real
agents over them in a :class:`~streamlearn.runtime.local.LocalCluster` whose wall clock is
virtual, a simulated second at a time:

- ``telemetry.events``: each hit the collector accepts, mapped by the collector's own
  :func:`~streamlearn.collector.mapping.map_item` (received when sent, from the actor's IP:
  a collector behind a proxy it trusts, as ``streamlearn up`` runs it). Malformed hits are
  what the collector refuses (400): counted in :attr:`Lab.counts`, never produced.
  Duplicates are accepted, as the collector does (preprocess drops them).
- ``telemetry.predictions``: a ``PredictionServed`` per slot of each human page view with
  recommendations, served when the page is viewed, by a stand-in model (:class:`Serving`):
  by default the true click model as it was before any change (``Truth()``), i.e. a
  well-calibrated model trained before the world changed. With a ``broken_model`` change it
  serves ``1 - p`` from the change on, under the next model version. Nothing else changes
  the model: concept drift makes the same scores wrong, as it would a frozen model's.
- ``telemetry.feedback``: what the simulator's loop sends for each slot (an impression when
  seen, a click, a conversion with its value), each received when it is due, mapped by the
  collector. Feedback due after the last simulated second stays pending (a later
  :meth:`Lab.run` sends it).
- ``events.clean`` and ``training.examples``: what the real preprocess and label-join steps
  make of those, polled after every simulated second and ticked on their cadence, so their
  event-time clocks, bot counters and label horizons behave as live.

Further steps (a monitor) run in the same cluster and virtual time: pass their factories to
:meth:`Lab.run` (``extra_steps``) or :meth:`Lab.add_step`; they are built from the lab's
:class:`~streamlearn.runtime.environment.StepEnvironment`, read from the start of their
inputs, and are polled and ticked after the built-in steps every simulated second.

Every record is stamped with the virtual time it was produced (``at_ms``): the hit's or
feedback's own time for the telemetry topics, the virtual second of the poll or tick that
emitted it for the agents' outputs. Deterministic: the same config, start and settings give
the same records (ids come from seeded generators).
"""

from __future__ import annotations

import heapq
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from streamlearn.agents import STEPS
from streamlearn.collector.exceptions import InvalidEventError
from streamlearn.collector.mapping import RequestContext, map_item
from streamlearn.garbage_collection import paced_collections
from streamlearn.kafka_clients import key_partition
from streamlearn.models.inputs import FeatureValue
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.local import LocalCluster, LocalWorker
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Step
from streamlearn.serde import EncodeError, InMemoryRegistry
from streamlearn.serving.prediction_codec import PredictionEncoder
from streamlearn.settings import ExplicitSettings, Settings
from streamlearn.simulate.lab_log import LabRecord, StampedCluster
from streamlearn.simulate.traffic import Hit, Slot, Traffic, TrafficConfig, seeded_ids
from streamlearn.simulate.truth import Truth
from streamlearn.topology.catalogue import TopicCatalogue

DEFAULT_START_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: simulated second 0 (a fixed start keeps runs reproducible)."""
TOPIC_ORDER = (
    "telemetry.events",
    "telemetry.predictions",
    "telemetry.feedback",
    "events.clean",
    "training.examples",
)
"""The topics :meth:`Lab.records` returns by default, and their order within one ms."""
BUILT_IN_STEPS = ("preprocess", "label-join")
"""The agents every lab runs (names in :data:`streamlearn.agents.STEPS`)."""
POLL_BATCH = 5000
"""Records per batch when a step is polled (a simulated second's worth, in one go)."""
ID_STREAM = 13
"""Second word of the seed of the lab's own ids (request ids, feedback event ids)."""

Scorer = Callable[[Mapping[str, FeatureValue], Mapping[str, str], float], float]
"""``score(features, context, at_s)``: a model's probability of a click."""
StepFactory = Callable[[StepEnvironment], Step]


def pre_change_truth() -> Scorer:
    """The true click model as it was before any change: a well-calibrated model trained
    before the world changed (it stays so under feature drift, not under concept drift)."""
    return Truth(None).p_click


@dataclass(frozen=True)
class Serving:
    """The lab's stand-in prediction worker: which model serves, and how it scores."""

    model_name: str = "ctr"
    """Label-join labels only the models in ``settings.models`` (``ctr`` by default)."""
    model_version: int = 1
    """The version served; ``model_version + 1`` once a ``broken_model`` change started."""
    scorer: Scorer | None = None
    """None: :func:`pre_change_truth`."""
    arms: tuple[str, ...] = ()
    """Experiment arms, assigned per user by a stable hash (CRC-32 of the user id); none: no
    experiment (``arm`` and ``experiment`` null)."""
    experiment: str = "lab"
    """The experiment's name when there are arms."""
    worker_version: str = "lab"


@dataclass
class LabCounts:
    """What the lab sent and what became of it (the live simulator's summary, in short)."""

    hits: dict[str, int] = field(default_factory=dict)
    """Hits by kind (page_view, duplicate, malformed)."""
    events: int = 0
    """Events the collector accepted (to ``telemetry.events``)."""
    refused: int = 0
    """Hits the collector refused (400): the malformed ones."""
    predictions: int = 0
    feedback: int = 0
    """Feedback items sent (to ``telemetry.feedback``)."""
    feedback_pending: int = 0
    """Feedback due after the last simulated second run, not sent yet."""


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class Lab:
    """A simulated world and the agents over its topics, in virtual time.

    ``Lab(config).run(1800)`` simulates 30 minutes; :meth:`records` then returns what each
    topic holds. ``run`` may be called again to go on from where the last one stopped.

    Subclasses (the learning lab) choose the built-in steps, whether hits go to
    ``telemetry.events`` at all, and how a slot is scored (:meth:`_score`).
    """

    built_in_steps: tuple[str, ...] = BUILT_IN_STEPS
    """The agents made with the lab (before any extra step)."""
    sends_events: bool = True
    """Whether accepted hits are produced to ``telemetry.events`` (a lab without preprocess
    saves mapping and encoding them: about a third of its time)."""

    def __init__(
        self,
        config: TrafficConfig,
        *,
        start_ms: int = DEFAULT_START_MS,
        settings: Settings | None = None,
        serving: Serving | None = None,
        partitions: int = 6,
    ) -> None:
        self.config = config
        self.start_ms = start_ms
        self.settings = settings or ExplicitSettings()  # the shell's are not the world's
        self.serving = serving or Serving()
        self.traffic = Traffic(config, start_ms, seeded_ids(config.seed))
        self.registry = InMemoryRegistry()
        self.cluster = StampedCluster(
            TopicCatalogue.from_settings(self.settings), self.registry, partitions
        )
        self.cluster.clock_ms = start_ms
        self.metrics = AgentMetrics()
        self.environment: StepEnvironment = self.cluster.environment(self.settings, self.metrics)
        """What the lab's steps are made from (extra steps too)."""
        self.counts = LabCounts()
        self.served: dict[str, Slot] = {}
        """Request id → the slot it served (its true probability and outcome)."""
        self.elapsed_s = 0.0
        """Simulated seconds run so far."""
        self.workers: list[LocalWorker] = []
        self._ticked_ms: list[int] = []
        self._new_id = seeded_ids(config.seed, ID_STREAM)
        self._scorer = self.serving.scorer
        self._pre_change = pre_change_truth()
        self._broken_at = config.change_at("broken_model")
        self._feedback: list[tuple[float, int, dict[str, Any], int]] = []
        """Heap of (due second, sequence, item, partition of its request id)."""
        self._sequence = 0
        self._user_partition: dict[str, int] = {}
        self._serdes = {
            topic: self.cluster.catalogue.topic(topic).serde(self.registry)
            for topic in ("telemetry.events", "telemetry.feedback", "telemetry.predictions")
        }
        self._predictions = PredictionEncoder(self._serdes["telemetry.predictions"])
        self._reject_unknown = self.settings.collector_unknown_fields == "reject"
        for name in self.built_in_steps:  # made as `streamlearn agents run` makes them
            self.add_step(STEPS[name])

    @property
    def now_ms(self) -> int:
        """The virtual wall clock (epoch ms): the start plus the simulated seconds run."""
        return self.start_ms + round(self.elapsed_s * 1000)

    # -- steps -----------------------------------------------------------------------------

    def add_step(self, make: StepFactory) -> LocalWorker:
        """Run ``make(lab.environment)`` over every partition, from the start of its inputs,
        polled and ticked after the steps added before it."""
        worker = LocalWorker(self.cluster, make(self.environment), now_ms=self.now_ms,
                             metrics=self.metrics)  # fmt: skip
        worker.assign(range(self.cluster.partitions))
        self.workers.append(worker)
        self._ticked_ms.append(self.now_ms)
        return worker

    def worker(self, name: str) -> LocalWorker:
        """The worker of the step called ``name`` (``preprocess``, ``label-join``, ...)."""
        for worker in self.workers:
            if worker.step.name == name:
                return worker
        raise KeyError(f"no step {name!r} in the lab")

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        duration_s: float,
        *,
        extra_steps: Iterable[StepFactory] = (),
        on_tick: Callable[[Lab], None] | None = None,
    ) -> LocalCluster:
        """Simulate ``duration_s`` more seconds, one virtual second at a time: produce what
        is due, poll every step (in the order added), tick those whose ``tick_every_s`` has
        passed, then call ``on_tick(lab)``. Returns the cluster."""
        if not 0 <= duration_s < math.inf:  # -10 and NaN ran nothing without a word
            raise ValueError(f"duration_s must be a finite number >= 0, not {duration_s}")
        for make in extra_steps:
            self.add_step(make)
        end_s = self.elapsed_s + duration_s
        # The agents' collector thresholds (garbage_collection.py): the lab's heap grows
        # with what it judges, and Python's thresholds walked all of it again and again.
        with paced_collections():
            while self.elapsed_s < end_s:
                t_s = min(math.floor(self.elapsed_s) + 1.0, end_s)
                self._produce_until(t_s)
                self.elapsed_s = t_s
                self._advance(self.now_ms)
                if on_tick is not None:
                    on_tick(self)
        self.counts.feedback_pending = len(self._feedback)
        return self.cluster

    def _advance(self, now_ms: int) -> None:
        """Every step reads what is new, is ticked if due, and reads again (what the ticks
        emitted reaches the later steps in the same second)."""
        self.cluster.clock_ms = now_ms
        for worker in self.workers:
            worker.now_ms = now_ms
            worker.run(POLL_BATCH)
        ticked = False
        for index, worker in enumerate(self.workers):
            every = worker.step.tick_every_s
            if every is not None and now_ms - self._ticked_ms[index] >= every * 1000:
                self._ticked_ms[index] = now_ms
                worker.tick(now_ms)
                ticked = True
        if ticked:
            for worker in self.workers:
                worker.run(POLL_BATCH)

    def _produce_until(self, t_s: float) -> None:
        for hit in self.traffic.until(t_s):
            self._send_hit(hit)
        feedback = self._feedback
        serde = self._serdes["telemetry.feedback"]
        cluster = self.cluster
        while feedback and feedback[0][0] <= t_s:
            due_s, _, item, partition = heapq.heappop(feedback)
            received_ms = self.start_ms + int(due_s * 1000)
            context = RequestContext(_at(received_ms), None, None, self.config.app_version)
            mapped = map_item(item, 0, context, reject_unknown=self._reject_unknown)
            cluster.clock_ms = received_ms
            cluster.produce("telemetry.feedback", mapped.key.encode(),
                            serde.encode(mapped.record), partition)  # fmt: skip
            self.counts.feedback += 1

    def _send_hit(self, hit: Hit) -> None:
        counts = self.counts
        counts.hits[hit.kind] = counts.hits.get(hit.kind, 0) + 1
        at_ms = self.start_ms + int(hit.at_s * 1000)
        if not self.sends_events:
            for slot in hit.slots:
                self._serve(hit, slot, at_ms)
            return
        actor = hit.actor
        context = RequestContext(_at(at_ms), actor.ip, actor.user_agent, self.config.app_version)
        try:
            mapped = map_item(hit.item, 0, context, reject_unknown=self._reject_unknown)
            value = self._serdes["telemetry.events"].encode(mapped.record)
        except (InvalidEventError, EncodeError):
            counts.refused += 1
            return
        partition = self._user_partition.get(mapped.key)
        if partition is None:
            partition = key_partition(mapped.key.encode(), self.cluster.partitions)
            self._user_partition[mapped.key] = partition
        self.cluster.clock_ms = at_ms
        self.cluster.produce("telemetry.events", mapped.key.encode(), value, partition)
        counts.events += 1
        for slot in hit.slots:
            self._serve(hit, slot, at_ms)

    def _serve(self, hit: Hit, slot: Slot, served_ms: int) -> None:
        serving, user_id = self.serving, hit.actor.user_id
        request_id = self._new_id()
        arm = None
        if serving.arms:
            arm = serving.arms[zlib.crc32(user_id.encode()) % len(serving.arms)]
        model_name, version, score = self._score(hit, slot, arm)
        value = self._predictions.encode_fields(
            request_id, user_id, model_name, version,
            serving.experiment if arm is not None else None, arm,
            slot.features, slot.context, score, None, version == 0, None, served_ms,
            serving.worker_version, 0.0,
        )  # fmt: skip
        key = request_id.encode()
        partition = key_partition(key, self.cluster.partitions)
        self.cluster.produce("telemetry.predictions", key, value, partition)
        self.counts.predictions += 1
        self.served[request_id] = slot
        self._served(request_id, hit, slot, model_name, version, score)
        if slot.seen:
            self._schedule(hit, slot, request_id, partition)

    def _score(self, hit: Hit, slot: Slot, arm: str | None) -> tuple[str, int, float]:
        """(model name, model version, score) served for ``slot`` (version 0: a fallback,
        ``degraded``)."""
        if self._scorer is not None:
            score = self._scorer(slot.features, slot.context, hit.at_s)
        elif self.traffic.truth.drifted(hit.at_s):
            score = self._pre_change(slot.features, slot.context, hit.at_s)
        else:
            score = slot.p_click  # the truth before any change, already computed
        version = self.serving.model_version
        if self._broken_at is not None and hit.at_s >= self._broken_at:
            score, version = 1.0 - score, version + 1
        return self.serving.model_name, version, score

    def _served(
        self, request_id: str, hit: Hit, slot: Slot, model_name: str, version: int, score: float
    ) -> None:
        """Called for every prediction produced (a subclass keeps what it judges)."""

    def _schedule(self, hit: Hit, slot: Slot, request_id: str, partition: int) -> None:
        """The feedback the simulator's loop sends for a seen slot, each when it is due."""
        moments: list[tuple[str, float, float | None]] = [
            ("impression", slot.impression_after_s, None)
        ]
        if slot.clicked:
            moments.append(("click", slot.click_after_s, None))
        if slot.converted:
            moments.append(("conversion", slot.conversion_after_s, slot.value))
        for kind, after_s, value in moments:
            due_s = hit.at_s + after_s
            item: dict[str, Any] = {
                "request_id": request_id,
                "event_id": self._new_id(),
                "kind": kind,
                "user_id": hit.actor.user_id,
                "client_ts": self.start_ms + int((due_s + hit.actor.clock_skew_s) * 1000),
                "app_version": self.traffic.app_version_at(due_s),
            }
            if value is not None:
                item["value"] = value
            self._sequence += 1
            heapq.heappush(self._feedback, (due_s, self._sequence, item, partition))

    # -- results ---------------------------------------------------------------------------

    def at_ms(self) -> dict[tuple[str, int, int], int]:
        """(topic, partition, offset) → the virtual ms each record was produced."""
        return self.cluster.at_ms()

    def records(self, topics: Sequence[str] = TOPIC_ORDER) -> list[LabRecord]:
        """Every record of ``topics``, ordered by (virtual ms produced, the topic's
        place in ``topics``, order produced)."""
        return self.cluster.records(topics)


def lab_records(
    config: TrafficConfig,
    duration_s: float,
    *,
    start_ms: int = DEFAULT_START_MS,
    settings: Settings | None = None,
    serving: Serving | None = None,
) -> list[LabRecord]:
    """Every record of :data:`TOPIC_ORDER` after ``duration_s`` simulated seconds of
    ``config``'s world (see :class:`Lab`), in the order they were produced."""
    lab = Lab(config, start_ms=start_ms, settings=settings, serving=serving)
    lab.run(duration_s)
    return lab.records()
