"""``replay diff``: what a shadow replay's outputs change against the live ones.

For each output topic of the replayed agents, records are matched by identity (the event
id of a clean event, a session's id, a training example's request id), the live side
limited to what the replayed input range produced, and compared field by field (leaving
out processing-time fields and source offsets, which differ by construction: the shadow
input is a copy). Records near the range's edges are left out on both sides, because the
replay starts and stops there and live processing did not: sessions that start within a
session gap of the range's first event or end within gap + lateness of its last, and
predictions whose label horizon (+ lateness) reaches past the last feedback. A range that
starts past its partitions' first records (``--from``, or after retention) has a start
live processing did not: there, live had read earlier records the shadow never saw, so
sessions are compared from a gap after the range's first records were received (not after
its earliest event time, which one old-stamped event pulls back), and clean events are
left out where earlier input decided them live: a duplicate whose first copy is before the
range, and what arrived within the bot rules' window of its start (replay/range_start.py).

For preprocess, events clean live but not in the shadow are broken down by the bot rule
(or duplicate) that filtered them: the preprocess step runs again in memory over the
shadow's input with the settings the replay recorded (its verdicts are a function of the
input, so they are the shadow worker's; its state changelog cannot tell, as expiry removes
the ids).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from streamlearn.agents.preprocess import (
    MAX_CLIENT_AHEAD_S,
    Preprocessor,
    PreprocessStep,
    Processed,
)
from streamlearn.agents.sessions import retracted
from streamlearn.models.specs import get_spec
from streamlearn.replay.exceptions import ReplayError
from streamlearn.replay.range_end import RangeEnd, range_end, users_read_after
from streamlearn.replay.range_start import (
    FIRST_RECORDS,
    RangeStart,
    leave_out_earlier_verdicts,
    moment,
    range_start,
)
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Record
from streamlearn.runtime.topic_reader import end_offsets, read_ranges
from streamlearn.serde import DecodeError, SchemaSource
from streamlearn.settings import Settings
from streamlearn.topology.catalogue import TopicCatalogue
from streamlearn.topology.namespace import Namespace

IGNORED = {
    "events.clean": {"source_offset"},
    "events.sessions": {"closed_ts"},
    "training.examples": set(),
}
"""Fields that differ between a shadow and live by construction."""
SHOWN = 5
COMPARED = frozenset({"preprocess", "sessionise", "label-join"})
"""The agents whose outputs `replay diff` compares (not the learner's snapshots)."""
log = logging.getLogger(__name__)


@dataclass
class TopicDiff:
    topic: str
    identity: str
    shadow: int
    live: int
    only_live: list[str] = field(default_factory=list)
    only_shadow: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_compared: str | None = None
    """Why none of the topic's records could be compared (the range is too short for the
    window they are compared in): a diff that compared nothing is not a diff without
    differences."""

    @property
    def differs(self) -> bool:
        return bool(self.only_live or self.only_shadow or self.changed)

    def lines(self) -> list[str]:
        if self.not_compared is not None:
            return [f"{self.topic}: not compared: {self.not_compared}"]
        head = (f"{self.topic}: {self.shadow:,} shadow, {self.live:,} live ({self.identity}); "
                f"only live {len(self.only_live):,}, only shadow {len(self.only_shadow):,}, "
                f"changed {len(self.changed):,}")  # fmt: skip
        lines = [head]
        for label, ids in (("only live", self.only_live), ("only shadow", self.only_shadow),
                           ("changed", self.changed)):  # fmt: skip
            if ids:
                more = f" (+{len(ids) - SHOWN:,} more)" if len(ids) > SHOWN else ""
                lines.append(f"  {label}: {', '.join(sorted(ids)[:SHOWN])}{more}")
        return lines + [f"  {note}" for note in self.notes]


class _Sides:
    """Decoded records of a topic in the shadow and the live namespace."""

    def __init__(self, settings: Settings, registry: SchemaSource, live: str, shadow: str) -> None:
        self.settings, self.registry = settings, registry
        self.live, self.shadow = Namespace(live), Namespace(shadow)
        self.catalogue = TopicCatalogue.from_settings(settings)

    def located(
        self, topic: str, side: str, first: int | None = None
    ) -> Iterable[tuple[int, int, dict[str, Any]]]:
        """(partition, offset, decoded value) of every record of ``topic`` on ``side`` (of
        each partition's ``first`` records only, when given) that decodes."""
        name = (self.live if side == "live" else self.shadow).topic(topic)
        serde = self.catalogue.topic(topic).serde(self.registry)
        ranges = {
            p: (low, end if first is None else min(low + first, end))
            for p, (low, end) in end_offsets(self.settings, name).items()
        }
        for record in read_ranges(self.settings, name, ranges):
            try:
                yield record.partition, record.offset, serde.decode(record.value)
            except DecodeError:
                continue  # malformed input: the agents rejected it on both sides

    def records(self, topic: str, side: str) -> Iterable[dict[str, Any]]:
        return (value for _, _, value in self.located(topic, side))


def _newest(
    records: Iterable[dict[str, Any]], key: str, keep: Callable[[dict[str, Any]], bool]
) -> dict[str, dict[str, Any]]:
    """Identity → its last record (a correction replaces a session), if ``keep`` says so;
    none for a session whose last record retracts it (``merged_into``: a late event merged
    it into an earlier one, which holds its events)."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        if keep(record):
            found[str(record[key])] = record
    return {k: r for k, r in found.items() if not retracted(r)}


def _compare(topic: str, identity: str, shadow: dict[str, Any], live: dict[str, Any]) -> TopicDiff:
    ignored = IGNORED.get(topic, set())

    def content(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in ignored}

    both = shadow.keys() & live.keys()
    return TopicDiff(
        topic,
        identity,
        len(shadow),
        len(live),
        only_live=sorted(live.keys() - shadow.keys()),
        only_shadow=sorted(shadow.keys() - live.keys()),
        changed=sorted(i for i in both if content(shadow[i]) != content(live[i])),
    )


def _matched(
    sides: _Sides,
    topic: str,
    identity: str,
    keep: Callable[[dict[str, Any]], bool],
    compared: str,
) -> TopicDiff:
    """Both sides' records of ``topic`` that ``keep`` admits, compared by ``identity``."""
    shadow = _newest(sides.records(topic, "shadow"), identity, keep)
    live = _newest(sides.records(topic, "live"), identity, keep)
    result = _compare(topic, identity, shadow, live)
    result.notes.append(f"compared: {compared}")
    return result


class _Discard:
    """An :class:`~streamlearn.runtime.step.Emit` that keeps nothing."""

    def to(self, topic: str) -> Callable[[str, dict[str, Any] | None], None]:
        return lambda key, value: None

    def reject(self, record: Record, reason: str, detail: str) -> None:
        return None


class _Dicts:
    """Plain in-memory :class:`~streamlearn.runtime.step.Stores`."""

    count = 1

    def __init__(self) -> None:
        self.held: dict[tuple[str, int], dict[str, Any]] = {}

    def of(self, store: str, partition: int) -> MutableMapping[str, Any]:
        return self.held.setdefault((store, partition), {})

    def partitions(self) -> frozenset[int]:
        return frozenset(p for _, p in self.held)


class _Judging(Preprocessor):
    """The preprocess logic, keeping the verdict on every event it filters and the ids of
    the events it passed clean."""

    def __init__(self, settings: Settings, metrics: AgentMetrics) -> None:
        super().__init__(settings, metrics)
        self.verdicts: dict[str, str] = {}
        self.clean: set[str] = set()

    def process(self, event: dict[str, Any], *args: Any, **kwargs: Any) -> Processed:
        result = super().process(event, *args, **kwargs)
        if result.outcome in ("bot", "duplicate"):
            self.verdicts[str(event["event_id"])] = result.bot_rule or ""
        elif result.outcome == "clean":
            self.clean.add(str(event["event_id"]))
        return result


def _shadow_judged(
    settings: Settings, events: dict[int, list[tuple[int, dict[str, Any]]]]
) -> _Judging:
    """The preprocess step run again in memory over ``events`` with ``settings``
    (deterministic: the same verdicts a worker reached), holding what it judged."""
    metrics = AgentMetrics()
    step = PreprocessStep(settings, metrics)
    judging = step.preprocessor = _Judging(settings, metrics)
    step.bind(_Dicts(), lambda: 0)
    for partition, records in sorted(events.items()):
        batch = [Record("telemetry.events", partition, o, None, v, None) for o, v in records]
        step.process(partition, batch, _Discard())
    return judging


def _shadow_verdicts(
    settings: Settings, events: dict[int, list[tuple[int, dict[str, Any]]]]
) -> dict[str, str]:
    """event id → the rule that filtered it in the shadow ("" : a duplicate), from the
    preprocess step run again in memory over the shadow's input with its settings. An
    event sent twice has the second copy's verdict, a duplicate, though its first was
    clean (:func:`_shadow_judged` says which were)."""
    return _shadow_judged(settings, events).verdicts


def _why(ids: Iterable[str], verdicts: dict[str, str], side: str) -> str:
    reasons = Counter(
        (f"bot rule {verdicts[i]}" if verdicts[i] else "duplicate") if i in verdicts else "unknown"
        for i in ids
    )
    listed = ", ".join(f"{reason} {count:,}" for reason, count in sorted(reasons.items()))
    return f"filtered in {side}: {listed}"


def diff_clean(
    sides: _Sides, recorded: dict[str, Any], start: RangeStart | None = None
) -> TopicDiff:
    events: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for partition, offset, event in sides.located("telemetry.events", "shadow"):
        events.setdefault(partition, []).append((offset, event))
    ids = {str(e["event_id"]) for records in events.values() for _, e in records}
    shadow = _newest(sides.records("events.clean", "shadow"), "event_id", lambda r: True)
    live = _newest(
        sides.records("events.clean", "live"), "event_id", lambda r: str(r["event_id"]) in ids
    )
    left_out = None if start is None else _left_out_note(shadow, live, start, recorded)
    if left_out is not None and not shadow and not live:
        # A range within the bot rules' window of its start compared nothing: 0 = 0 said
        # "no differences" (exit 0) of a replay nobody had checked.
        return _not_compared("events.clean", "event_id", f"{left_out}, which leaves none")
    result = _compare("events.clean", "event_id", shadow, live)
    if result.only_live:
        replayed = Settings(**{k: v for k, v in recorded.items() if v is not None})
        result.notes.append(_why(result.only_live, _shadow_verdicts(replayed, events), "shadow"))
    if result.only_shadow:
        result.notes.append(f"filtered in live: {len(result.only_shadow):,} (clean in shadow)")
    if left_out is not None:
        result.notes.append(left_out)
    return result


def _left_out_note(
    shadow: dict[str, dict[str, Any]],
    live: dict[str, dict[str, Any]],
    start: RangeStart,
    recorded: dict[str, Any],
) -> str:
    """:func:`~streamlearn.replay.range_start.leave_out_earlier_verdicts`, and the note
    saying what it left out."""
    duplicates, near, window_s = leave_out_earlier_verdicts(shadow, live, start, recorded)
    return (
        f"left out near the range's start (offsets {start.where()}): {duplicates:,} "
        f"duplicate{'s' if duplicates != 1 else ''} whose first copy is before it, "
        f"{near:,} event{'s' if near != 1 else ''} received within the bot rules' "
        f"window ({_span(window_s)}) of its first records"
    )


def _not_compared(topic: str, identity: str, why: str) -> TopicDiff:
    return TopicDiff(topic, identity, 0, 0, not_compared=why)


def _span(seconds: float) -> str:
    """``2m20s``, ``31m00s``, ``30s``."""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def diff_sessions(
    sides: _Sides,
    gap_s: float,
    lateness_s: float,
    start: datetime | None = None,
    end: RangeEnd | None = None,
) -> TopicDiff:
    """``start``: when the range's first record was received, for a range that starts past
    its partitions' first records (the latest over its partitions): live had events before
    it, whose event times are at most that plus ``MAX_CLIENT_AHEAD_S``. ``end``: where the
    range ends, past which live read events the shadow never saw."""
    times = [moment(e["event_ts"]) for e in sides.records("events.clean", "shadow")]
    if not times:
        return _not_compared("events.sessions", "session_id", "the shadow has no clean events")
    first = min(times) + timedelta(seconds=gap_s)
    after = "its first event"
    if start is not None and start + timedelta(seconds=MAX_CLIENT_AHEAD_S) > min(times):
        first = start + timedelta(seconds=MAX_CLIENT_AHEAD_S + gap_s)
        after = f"its first record's receipt (+{_span(MAX_CLIENT_AHEAD_S)} a clock may run ahead)"
    last = max(times) - timedelta(seconds=gap_s + lateness_s)
    if first > last:
        held = (max(times) - min(times)).total_seconds()
        return _not_compared(
            "events.sessions", "session_id",
            f"the range holds {_span(held)} of event time; sessions are compared from a "
            f"session gap ({_span(gap_s)}) after {after} to gap + lateness "
            f"({_span(gap_s + lateness_s)}) before its last event, which leaves no time",
        )  # fmt: skip

    # Late events live read after the range (stamped within it) made or changed sessions
    # the shadow cannot have: `--to` gave 67 sessions only live with the same settings.
    late = set()
    if end is not None:
        until = last + timedelta(seconds=gap_s)
        late = users_read_after(sides.located("events.clean", "live"), end, until)

    def inside(session: dict[str, Any]) -> bool:
        return (
            first <= moment(session["start_ts"])
            and moment(session["end_ts"]) <= last
            and (not late or str(session["user_id"]) not in late)
        )

    note = f"sessions from {first.isoformat()} to {last.isoformat()} (away from the range's edges)"
    result = _matched(sides, "events.sessions", "session_id", inside, note)
    if late:
        result.notes.append(
            f"left out near the range's end: sessions of {len(late):,} user(s) with events "
            "live read after it (received after the range, stamped within it)"
        )
    return result


def diff_examples(sides: _Sides, horizon_s: float, lateness_s: float) -> TopicDiff:
    served = {
        str(p["request_id"]): p["served_ts"]
        for p in sides.records("telemetry.predictions", "shadow")
    }
    feedback = [f["received_ts"] for f in sides.records("telemetry.feedback", "shadow")]
    if not served:
        return _not_compared("training.examples", "request_id", "the shadow has no predictions")
    newest = max([*served.values(), *feedback])
    last = newest - timedelta(seconds=horizon_s + lateness_s)
    decided = {i for i, at in served.items() if at <= last}
    if not decided:
        return _not_compared(
            "training.examples", "request_id",
            f"no prediction's label horizon (+ lateness, {_span(horizon_s + lateness_s)}) "
            "closed within the range",
        )  # fmt: skip

    def keep(example: dict[str, Any]) -> bool:
        return str(example["request_id"]) in decided

    note = f"predictions served until {last.isoformat()} (their horizons closed in the range)"
    return _matched(sides, "training.examples", "request_id", keep, note)


def diff_replay(
    settings: Settings, registry: SchemaSource, manifest: dict[str, Any]
) -> list[TopicDiff]:
    """Per output topic of the replayed agents, what the shadow changes."""
    if not set(manifest["agents"]) & COMPARED:
        # Only the learner: an empty list of topics said "no differences", exit 0.
        raise ReplayError(
            f"nothing to compare: replay diff compares the outputs of "
            f"{', '.join(sorted(COMPARED))}, and the replay into {manifest['shadow_prefix']!r} "
            f"ran {', '.join(manifest['agents'])}; its learner's snapshots are checked with "
            f"`STREAMLEARN_TOPIC_PREFIX={manifest['shadow_prefix']} streamlearn replay verify "
            "MODEL --all`"
        )
    sides = _Sides(settings, registry, manifest["live_prefix"], manifest["shadow_prefix"])
    agents = set(manifest["agents"])
    recorded = manifest["settings"]
    # The events' root: telemetry.events when preprocess was replayed, else events.clean.
    events_root = next(
        (t for t in ("telemetry.events", "events.clean") if t in manifest["inputs"]), None
    )
    start = None
    if events_root is not None:
        # Read only when the range starts past a first record (range_start looks first).
        firsts = sides.located(events_root, "shadow", first=FIRST_RECORDS)
        start = range_start(manifest["inputs"][events_root], firsts)
    received = None if start is None or not start.received else max(start.received.values())
    end = None if events_root is None else range_end(events_root, manifest["inputs"][events_root])
    results = []
    if "preprocess" in agents:
        results.append(diff_clean(sides, recorded, start))
    if "sessionise" in agents:
        gap_s, lateness_s = recorded["session_gap_s"], recorded["session_allowed_lateness_s"]
        results.append(diff_sessions(sides, gap_s, lateness_s, received, end))
    if "label-join" in agents:
        horizon = recorded["label_horizon_s"] or max(
            get_spec(model).label.horizon_s for model in recorded["models"]
        )
        results.append(diff_examples(sides, horizon, recorded["label_allowed_lateness_s"]))
    return results
