"""The monitor agent: data-level monitoring of what the system takes in, serves and learns.

Pipelines fail semantically while staying up technically, so the monitor watches the data:

- ``telemetry.predictions``: every feature as served and the score, per model and arm
  (numeric: fixed-edge histograms; categorical: top-k and other; null rate of each);
  the share of degraded answers (the ``degraded`` flag as a 0/1 feature); the decision
  mix (what the business rules made of the scores: an action cap that engages shows).
- ``training.examples``: calibration of the served scores against the labels they
  earned (expected calibration error, mean residual, log loss), the label rate and the
  label delay, per model and arm.
- ``events.clean``: each field's null rate per producer (``app_version``): a new app
  version that stops populating a field is compared with what the field was before it;
  and the event type mix per producer.
- ``telemetry.events`` beside ``events.clean``: the share of events preprocess filtered
  (bots, duplicates, invalid), per event-time bucket.
- ``events.sessions``: session length (seconds), pages per session and the share of
  sessions sessionise marked as bots. A correction (a session emitted again with late
  events) replaces one already counted and is not counted again.

Each quantity of each input partition is a stream (:mod:`streamlearn.agents.monitor_streams`):
a fixed reference (its first records), then windows of N records tied to offsets. Every
closed window goes to ``monitoring.drift`` (a ``DriftReport``: reference and current
histograms, statistics, thresholds); a statistic over its threshold in enough windows in
a row raises an ``Alert`` on ``monitoring.alerts``, held back for a cooldown (event time)
when the same condition fired recently. Every figure is also on ``/metrics``.

The partitions are monitored separately (state is partition-scoped, so scaling the
monitor changes nothing but speed): predictions are spread over partitions by request
id, so each partition sees a random share of them, and a drift shows in each. Alerts for
one condition share an alert key across partitions (consumers group by it); the
partition is a label.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from streamlearn.agents.monitor_calibration import CalibrationStream
from streamlearn.agents.monitor_metrics import MonitorMetrics
from streamlearn.agents.monitor_partition import PartitionStreams
from streamlearn.agents.monitor_share import PipelineShare
from streamlearn.agents.monitor_streams import (
    ClosedWindow,
    HistogramStream,
    RateStream,
    StreamId,
    WindowConfig,
)
from streamlearn.models.configured import configured_specs
from streamlearn.models.specs import ModelSpec
from streamlearn.runtime.environment import StepEnvironment
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.serde.timestamps import epoch_millis
from streamlearn.settings import Settings

AGENT = "monitor"
STORE = "monitor"
EVENT_MIX_REFERENCE = "events/reference/"
"""The store's key (then the app, :func:`producer_app`) of an app's event type mix
reference: the partition's first events of any of its versions."""
_VERSION_SUFFIX = re.compile(r"[-_.\s/]*v?\d[\w.+-]*$")
SESSIONS_SINCE = "sessions/since"
"""The store's key of (sessions seen, the newest end among the first of them, epoch ms)."""
WARM_UP_SESSIONS = 50
SESSION_WARM_UP_GAPS = 10.0
"""How many session gaps after that sessions start counting (see ``_session``)."""
ALERT_KINDS = {
    "feature": "drift",
    "score": "drift",
    "events": "drift",
    "labels": "drift",
    "null_rate": "null_rate",
    "pipeline": "pipeline",
    "calibration": "calibration",
    "sessions": "drift",
}
# CleanEvent fields every event has (never null) are not monitored for nulls.
REQUIRED_CLEAN_FIELDS = frozenset(
    {"event_id", "event_type", "user_id", "client_ts", "received_ts", "event_ts",
     "app_version", "properties", "context", "source_partition", "source_offset"}
)  # fmt: skip

Stream = HistogramStream | RateStream | CalibrationStream | PipelineShare


class MonitorStep(Step):
    """The agent (see the module docstring)."""

    name = AGENT
    inputs = (
        "telemetry.events",
        "events.clean",
        "events.sessions",
        "telemetry.predictions",
        "training.examples",
    )
    outputs = ("monitoring.drift", "monitoring.alerts")
    stores = (STORE,)
    # Every input is read by an agent that rejects what it cannot decode (preprocess,
    # sessionise, label-join, learner): the monitor counts such records, one rejection
    # record per bad record is theirs to write.
    publishes_rejections = False
    # Alerts half a second later are no loss; caught up, its five streams arrived a record
    # or two per batch, and the batches' fixed costs (bookkeeping, a state write, commits)
    # were 27-31 % of a core in `up --simulate`, its own work ~3 % (docs/agents.md).
    fetch_hold_ms = 500

    def __init__(
        self, settings: Settings, metrics: AgentMetrics, specs: Mapping[str, ModelSpec]
    ) -> None:
        self.config = WindowConfig(
            window=settings.monitor_window_records,
            reference=settings.monitor_reference_records,
            false_alarm_rate=settings.monitor_false_alarm_rate,
            consecutive=settings.monitor_consecutive_windows,
            calibration_consecutive=settings.monitor_calibration_consecutive_windows,
            reference_span_ms=int(settings.monitor_reference_span_s * 1000),
            bins=settings.monitor_bins,
            top_k=settings.monitor_top_k,
        )
        # Until a model's examples flow in their steady mix, a reference would be skewed:
        # positives are emitted as soon as the click comes, negatives only after the
        # label horizon. So examples labelled within horizon + lateness of the stream's
        # first served prediction are not monitored (models without a spec: the longest).
        lateness_ms = int(settings.label_allowed_lateness_s * 1000)
        self.warm_up_ms = {
            name: spec.label.horizon_ms + lateness_ms for name, spec in specs.items()
        }
        self.default_warm_up_ms = max(self.warm_up_ms.values(), default=0)
        self.bucket_ms = int(settings.monitor_bucket_s * 1000)
        self.session_warm_up_ms = int(SESSION_WARM_UP_GAPS * settings.session_gap_s * 1000)
        self.cooldown_ms = int(settings.monitor_cooldown_s * 1000)
        self.metrics = MonitorMetrics(metrics, ALERT_KINDS)
        self._partitions: dict[int, PartitionStreams] = {}

    def opened(self, partition: int) -> None:
        self._partitions[partition] = PartitionStreams(self.state.of(STORE, partition))

    def closing(self, partition: int, emit: Emit) -> None:
        self._partitions.pop(partition, None)
        self.metrics.forget(partition)

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        if not records:
            return
        state = self._partitions[partition]
        topic = records[0].topic
        handle = {
            "telemetry.predictions": self._prediction,
            "training.examples": self._example,
            "events.clean": self._clean_event,
            "telemetry.events": self._raw_event,
            "events.sessions": self._session,
        }[topic]
        # Records this state took in already (a batch re-read after a crash that followed
        # the state's write): skipped, their outputs went out with them.
        taken = dict(state.store.get("taken") or {})
        newest = taken.get(topic, -1)
        closed: list[ClosedWindow] = []
        for record in records:
            if record.offset > newest:
                closed += handle(state, record)
        taken[topic] = max(newest, records[-1].offset)
        state.store["taken"] = taken
        for window in closed:
            self._publish(state, partition, window, emit)
        for producer in state.take_retired():
            self.metrics.forget_producer(partition, producer)
        state.write_back()

    # -- inputs ----------------------------------------------------------------------

    def _histogram(self, state: PartitionStreams, stream: StreamId, topic: str) -> HistogramStream:
        stream_value: HistogramStream = state.get(
            stream.key, lambda data: HistogramStream(stream, topic, data)
        )
        return stream_value

    def _rate(self, state: PartitionStreams, stream: StreamId, topic: str) -> RateStream:
        stream_value: RateStream = state.get(
            stream.key, lambda data: RateStream(stream, topic, data)
        )
        return stream_value

    def _prediction(self, state: PartitionStreams, record: Record) -> list[ClosedWindow]:
        value = record.value
        model, arm, version = value["model_name"], value.get("arm"), value["model_version"]
        at_ms = epoch_millis(value["served_ts"])
        if (
            value["degraded"]
            and not self._histogram(
                state, StreamId("score", "degraded", model=model, arm=arm), record.topic
            ).ready
        ):
            # A fallback before the model's reference is complete (a worker starting
            # before any model was published): not what the model serves.
            return []
        observed: list[tuple[str, str, Any]] = [
            ("score", "score", value["score"]),
            ("score", "degraded", bool(value["degraded"])),
            # What the business rules made of the score: an action cap that engages
            # turns positive decisions into the fallback one, which shifts this mix.
            ("score", "decision", value["decision"]),
        ]
        features = value["features"]
        untracked = 0
        for name in sorted(features.keys() | self._absent(state, model, arm, features)):
            if name not in features:
                observed.append(("feature", name, None))
            elif state.tracks(model, arm, name):
                observed.append(("feature", name, features[name]))
            else:
                untracked += 1
        if untracked:
            self.metrics.untracked.labels(model=model).inc(untracked)
        closed = []
        for scope, feature, observation in observed:
            stream = StreamId(scope, feature, model=model, arm=arm)
            window = self._histogram(state, stream, record.topic).add(
                observation, record.offset, at_ms, version, self.config
            )
            if window is not None:
                closed.append(window)
        return closed

    @staticmethod
    def _absent(
        state: PartitionStreams, model: str, arm: str | None, features: Mapping[str, Any]
    ) -> set[str]:
        """The tracked features of (``model``, ``arm``) this prediction was served without,
        where that counts as missing: a client that stops sending a feature leaves its key
        out, and its stream, getting no record at all, closed no window and raised no
        alert (found by a new user; an explicit null did raise one)."""
        absent = set()
        for name in state.tracked(model, arm) - features.keys():
            # Read without taking it: a stream that does not count it is not written back.
            if _held_feature(state, StreamId("feature", name, model=model, arm=arm)).counts_absence:
                absent.add(name)
        return absent

    def _example(self, state: PartitionStreams, record: Record) -> list[ClosedWindow]:
        value = record.value
        model, arm, version = value["model_name"], value.get("arm"), value["model_version"]
        served_ms, labelled_ms = (
            epoch_millis(value["served_ts"]),
            epoch_millis(value["labelled_ts"]),
        )
        first_served = dict(state.store.get("first_served") or {})
        if model not in first_served:
            first_served[model] = served_ms
            state.store["first_served"] = first_served
        warm_up_ms = self.warm_up_ms.get(model, self.default_warm_up_ms)
        if labelled_ms < first_served[model] + warm_up_ms:
            return []
        stream = StreamId("calibration", "score", model=model, arm=arm)
        calibration: CalibrationStream = state.get(
            stream.key, lambda data: CalibrationStream(stream, record.topic, data)
        )
        closed = [
            calibration.add(float(value["score"]), float(value["label"]), record.offset,
                            labelled_ms, version, self.config),
        ]  # fmt: skip
        for feature, observation in (
            ("label", float(value["label"])),
            ("label_delay_s", (labelled_ms - served_ms) / 1000),
        ):
            closed.append(
                self._histogram(
                    state, StreamId("labels", feature, model=model, arm=arm), record.topic
                ).add(observation, record.offset, labelled_ms, version, self.config)
            )
        return [window for window in closed if window is not None]

    def _clean_event(self, state: PartitionStreams, record: Record) -> list[ClosedWindow]:
        value = record.value
        producer = str(value["app_version"])
        retired = state.heard_from(producer, record.offset)
        if retired is not None:
            streams = self._producer_streams(state, retired)
            state.drop(stream.key for stream in streams)
            state.forget_alerts(alert_key_of(stream) for stream in streams)
            app = producer_app(retired)
            if all(producer_app(other) != app for other in state.producers()):
                # The last version of its app: its reference goes too (app names are a
                # client's choice, and kept for good they grew the store).
                state.drop([EVENT_MIX_REFERENCE + app])
            self.metrics.retired_producers.inc()
        at_ms = epoch_millis(value["received_ts"])
        fields = {
            name: field_value
            for name, field_value in value.items()
            if name not in REQUIRED_CLEAN_FIELDS
        }
        for mapping in ("properties", "context"):
            for name, field_value in (value.get(mapping) or {}).items():
                fields[f"{mapping}.{name}"] = field_value
        closed = self._pipeline(state, record.topic).clean(at_ms, self.config)
        window = self._event_mix(state, producer, record, at_ms)
        if window is not None:
            closed.append(window)
        reference = state.store.get("nullref") or {"n": 0, "present": {}, "start": at_ms}
        if not self.config.reference_complete(reference["n"], reference.get("start"), at_ms):
            # The reference: how often each field is populated, over the first events
            # of the reference span.
            present = dict(reference["present"])
            for name, field_value in fields.items():
                if field_value is not None:
                    present[name] = present.get(name, 0) + 1
                else:
                    present.setdefault(name, 0)
            state.store["nullref"] = dict(reference, n=reference["n"] + 1, present=present)
            return closed
        for name, populated in sorted(reference["present"].items()):
            stream = StreamId("null_rate", name, producer=producer)
            window = self._rate(state, stream, record.topic).add(
                fields.get(name) is None, record.offset, at_ms,
                (reference["n"], reference["n"] - populated), "null_rate", self.config,
            )  # fmt: skip
            if window is not None:
                closed.append(window)
        return closed

    def _event_mix(
        self, state: PartitionStreams, producer: str, record: Record, at_ms: int
    ) -> ClosedWindow | None:
        """The producer's event type mix, against the first events of its app (any version,
        :func:`producer_app`): each producer's own first events were its reference, and a
        release that never sent clicks matched a reference without them. Not against every
        producer's, as null rates are: apps on different platforms send different event
        types, and a pooled reference drifted from each of them for good."""
        event_type = record.value["event_type"]
        shared: HistogramStream = state.get(
            EVENT_MIX_REFERENCE + producer_app(producer),
            lambda data: HistogramStream(StreamId("events", "event_type"), record.topic, data),
        )
        in_reference = not shared.ready
        if in_reference:
            # Windows never close here: only the reference is taken, then it stays.
            shared.add(event_type, record.offset, at_ms, None, self.config)
        stream = StreamId("events", "event_type", producer=producer)
        mix: HistogramStream = state.peek(
            stream.key, lambda data: HistogramStream(stream, record.topic, data)
        )
        if not mix.ready and mix.ref_n == 0:
            if in_reference:
                return None
            mix.adopt(shared)
        # A stream that began its own reference before the shared one existed (state of an
        # older monitor) goes on with it.
        return self._histogram(state, stream, record.topic).add(
            event_type, record.offset, at_ms, None, self.config
        )

    @staticmethod
    def _producer_streams(state: PartitionStreams, producer: str) -> list[StreamId]:
        """Every stream of ``producer``."""
        reference = state.store.get("nullref") or {"present": {}}
        return [
            StreamId("events", "event_type", producer=producer),
            *(StreamId("null_rate", name, producer=producer) for name in reference["present"]),
        ]

    def _session(self, state: PartitionStreams, record: Record) -> list[ClosedWindow]:
        value = record.value
        if value["is_correction"]:
            return []
        at_ms = epoch_millis(value["end_ts"])
        # A session is judged when it closes, and at a stream's start only short ones can
        # have closed yet: a reference of those is one every later window drifts from.
        # Sessions closing within SESSION_WARM_UP_GAPS session gaps of the stream's start
        # are left out (docs/monitoring.md, "Known limits"). The start is the newest end
        # among the partition's first WARM_UP_SESSIONS sessions: late events make
        # sessions that closed long before (a quarter of an hour in the simulator), and
        # they come first.
        seen, anchor_ms = state.store.get(SESSIONS_SINCE) or (0, at_ms)
        if seen < WARM_UP_SESSIONS:
            state.store[SESSIONS_SINCE] = (seen + 1, max(anchor_ms, at_ms))
            return []
        if at_ms < anchor_ms + self.session_warm_up_ms:
            return []
        closed = []
        for feature, observation in (
            ("duration_s", value["duration_ms"] / 1000),
            ("page_count", value["page_count"]),
            ("is_bot", bool(value["is_bot"])),
        ):
            window = self._histogram(state, StreamId("sessions", feature), record.topic).add(
                observation, record.offset, at_ms, None, self.config
            )
            if window is not None:
                closed.append(window)
        return closed

    def _raw_event(self, state: PartitionStreams, record: Record) -> list[ClosedWindow]:
        at_ms = epoch_millis(record.value["received_ts"])
        return self._pipeline(state, record.topic).raw(record.offset, at_ms, self.config)

    def _pipeline(self, state: PartitionStreams, topic: str) -> PipelineShare:
        stream = StreamId("pipeline", "filtered_share")
        share: PipelineShare = state.get(
            stream.key,
            lambda data: PipelineShare(stream, "telemetry.events", self.bucket_ms, data),
        )
        return share

    # -- outputs ---------------------------------------------------------------------

    def _publish(
        self, state: PartitionStreams, partition: int, window: ClosedWindow, emit: Emit
    ) -> None:
        report = dict(window.report, partition=partition)
        emit.to("monitoring.drift")(report["report_key"], report)
        self.metrics.closed(window, partition)
        if not window.alerting:
            return
        kind = ALERT_KINDS[window.stream.scope]
        alert_key = alert_key_of(window.stream)
        cooldowns = dict(state.store.get("cooldown") or {})
        now = int(report["window_end_ts"])
        last = cooldowns.get(alert_key)
        if last is not None and now - last < self.cooldown_ms:
            self.metrics.suppressed.labels(kind).inc()
            return
        cooldowns[alert_key] = now
        if len(cooldowns) > MAX_COOLDOWNS:
            # The map is one store record: past the bound the keys raised longest ago go.
            # Not by this window's time: streams' times differ by the label horizon and
            # more (sessions lag predictions), and pruning by one stream's time dropped
            # another's running cooldown (a review).
            kept = sorted(cooldowns.items(), key=lambda kv: (kv[1], kv[0]))[-MAX_COOLDOWNS:]
            cooldowns = dict(kept)
        state.store["cooldown"] = cooldowns
        self.metrics.alerts.labels(kind).inc()
        emit.to("monitoring.alerts")(alert_key, _alert(alert_key, kind, report, window))


MAX_COOLDOWNS = 4096
"""Alert keys whose last alert time a partition keeps (about 60 bytes each)."""


def _held_feature(state: PartitionStreams, stream: StreamId) -> HistogramStream:
    """A feature's stream as the partition holds it, to read (not written back for it)."""
    held: HistogramStream = state.peek(
        stream.key, lambda data: HistogramStream(stream, "telemetry.predictions", data)
    )
    return held


@functools.lru_cache(maxsize=1024)
def producer_app(producer: str) -> str:
    """The app a producer (``app_version``) is a version of: its name without the trailing
    version (``ios-4.2`` → ``ios``, ``shop-web-2.3`` → ``shop-web``, ``web`` → ``web``).
    Asked for every event: cached (producers are few; the regex took ~0.6 µs a call, the
    cache ~0.16)."""
    return _VERSION_SUFFIX.sub("", producer)


def alert_key_of(stream: StreamId) -> str:
    """The kind, then the stream; the scope once where it is the kind."""
    kind = ALERT_KINDS[stream.scope]
    return stream.key if stream.scope == kind else f"{kind}/{stream.key}"


def _alert(
    alert_key: str, kind: str, report: Mapping[str, Any], window: ClosedWindow
) -> dict[str, Any]:
    # The statistic furthest over its threshold speaks for the window.
    statistic, (value, threshold) = max(
        window.alerting.items(), key=lambda item: item[1][0] / max(item[1][1], 1e-12)
    )
    stream = window.stream
    subject = stream.feature
    if stream.model:
        subject += f" of {stream.model}" + (f" (arm {stream.arm})" if stream.arm else "")
    if stream.producer:
        subject += f" from {stream.producer}"
    where = (f"{report['topic']}[{report['partition']}] offsets "
             f"{report['first_offset']}-{report['last_offset']}")  # fmt: skip
    labels = {
        "scope": stream.scope,
        "feature": stream.feature,
        "statistic": statistic,
        "topic": str(report["topic"]),
        "partition": str(report["partition"]),
        "first_offset": str(report["first_offset"]),
        "last_offset": str(report["last_offset"]),
    }
    if stream.arm:
        labels["arm"] = stream.arm
    if stream.producer:
        labels["producer"] = stream.producer
    return {
        "alert_key": alert_key,
        "kind": kind,
        "severity": "warning",
        "message": f"{subject}: {statistic} {value:.4g} over its threshold {threshold:.4g} "
        f"({where})",
        "model_name": stream.model,
        "model_version": report["model_version"],
        "value": value,
        "threshold": threshold,
        "labels": labels,
        "source": AGENT,
        "raised_ts": int(report["window_end_ts"]),
    }


def make_monitor(env: StepEnvironment) -> MonitorStep:
    return MonitorStep(env.settings, env.metrics, configured_specs(env.settings))
