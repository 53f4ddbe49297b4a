"""Inactivity-gap sessions per user on event time, with a watermark and allowed lateness.

Two events of a user belong to one session when their event times are less than the gap
apart. Each partition's watermark is the newest event time it has seen minus the allowed
lateness; a session closes (and is emitted) once the watermark has passed its end plus
the gap, because no event that is not late can extend it any more. Closing happens on the
user's own events and on :meth:`Sessionizer.sweep`, which the agent calls from a timer and
which also advances the watermark of a partition that has gone quiet (wall clock), so
sessions close even when no further event arrives.

An event older than the watermark is *late*. It is counted, and then, per
``session_late_policy``: attached to the user's still-open session it falls into; merged
into the user's last emitted session and re-emitted as a correction
(``is_correction=true``, same ``session_id``); or dropped (``drop``).

State is plain JSON-able data in caller-provided mappings (Faust tables in the agent):
``users`` maps user id → {"p": partition, "open": [...], "closed": [...]}. Emitted sessions
stay in ``closed`` until the watermark is ``dedup_window_s`` past the point where no late
event could reach them, so a copy of an event replayed after a crash is still recognised.

Idempotent under at-least-once delivery: each session remembers the ids of its events, so
an event read twice (a replay after a crash, or a duplicate upstream) counts once. Every
method returns :class:`Step` s; the caller emits a step's sessions, waits until Kafka has
them, and only then calls :meth:`Sessionizer.commit` to persist the new state. A crash in
between replays the events and emits the same sessions again (same ids and contents,
harmless to consumers that keep the newest record per ``session_id``); the reverse order
could lose a session.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamlearn.agents.metrics import AgentMetrics
from streamlearn.settings import Settings

MAX_PAGES = 200
MAX_REMEMBERED_IDS = 10_000

Session = dict[str, Any]


@dataclass
class Step:
    """Sessions to emit, and the user state to store once they are delivered."""

    user_id: str
    state: dict[str, Any]
    emitted: list[Session]


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _new_session(event: dict[str, Any], ts: int) -> Session:
    return {
        "start": ts,
        "end": ts,
        "count": 0,
        "pages": {},
        "first": [ts, str(event["event_id"])],
        "last": [ts, str(event["event_id"])],
        "device": event.get("device_class"),
        "late": 0,
        "id": None,
        "ids": [],
    }


def _add(session: Session, event: dict[str, Any], ts: int) -> None:
    session["start"] = min(session["start"], ts)
    session["end"] = max(session["end"], ts)
    session["count"] += 1
    event_id = str(event["event_id"])
    if len(session["ids"]) < MAX_REMEMBERED_IDS:
        session["ids"].append(event_id)
    if ts < session["first"][0]:
        session["first"] = [ts, event_id]
        session["device"] = event.get("device_class")
    if ts >= session["last"][0]:
        session["last"] = [ts, event_id]
    url = event.get("url")
    if url is not None:
        pages = session["pages"]
        if url in pages:
            pages[url] = min(pages[url], ts)
        elif len(pages) < MAX_PAGES:
            pages[url] = ts


def _merge(into: Session, other: Session) -> None:
    into["count"] += other["count"]
    into["late"] += other["late"]
    into["ids"] = (into["ids"] + other["ids"])[:MAX_REMEMBERED_IDS]
    if other["first"][0] < into["first"][0]:
        into["first"], into["device"] = other["first"], other["device"]
    if other["last"][0] >= into["last"][0]:
        into["last"] = other["last"]
    into["start"] = min(into["start"], other["start"])
    into["end"] = max(into["end"], other["end"])
    for url, ts in other["pages"].items():
        if url in into["pages"] or len(into["pages"]) < MAX_PAGES:
            into["pages"][url] = min(ts, into["pages"].get(url, ts))


class Sessionizer:
    def __init__(
        self,
        settings: Settings,
        users: MutableMapping[str, dict[str, Any]],
        watermarks: MutableMapping[str, int],
        metrics: AgentMetrics,
    ) -> None:
        self.gap_ms = int(settings.session_gap_s * 1000)
        self.lateness_ms = int(settings.session_allowed_lateness_s * 1000)
        self.idle_ms = int(settings.session_idle_s * 1000)
        self.dedup_ms = int(settings.dedup_window_s * 1000)
        self.late_policy = settings.session_late_policy
        self.users = users
        self.watermarks = watermarks  # str(partition) -> newest event time seen (ms)
        self.metrics = metrics
        self._last_activity: dict[str, float] = {}  # partition -> wall time of last event

    def watermark(self, partition: int) -> int | None:
        newest = self.watermarks.get(str(partition))
        return None if newest is None else newest - self.lateness_ms

    def process(self, event: dict[str, Any], partition: int, now_ms: int) -> Step:
        """Add one clean event; the step holds the sessions it closed or corrected."""
        user_id = event["user_id"]
        ts = _millis(event["event_ts"])
        watermark = self.watermark(partition)
        state = self.users.get(user_id) or {"p": partition, "open": [], "closed": []}
        emitted: list[Session] = []
        if self._seen(state, str(event["event_id"])):
            return Step(user_id, state, [])
        late = watermark is not None and ts < watermark
        closed = self._touching(state["closed"], ts)
        if late and (self.late_policy == "drop" and not self._touching(state["open"], ts)):
            self.metrics.late_events.labels(handling="dropped").inc()
        elif closed:
            # The event belongs to a session already emitted: late, or the watermark was
            # rebuilt after a restart. Either way the emitted session is corrected.
            emitted.append(self._correct(user_id, state, closed[0], event, ts))
            if late:
                self.metrics.late_events.labels(handling="correction").inc()
        else:
            session = self._place(state, event, ts)
            if late:
                session["late"] += 1
                attached = session["count"] > 1
                handling = "attached" if attached else "new_session"
                self.metrics.late_events.labels(handling=handling).inc()
        key = str(partition)
        self.watermarks[key] = max(self.watermarks.get(key, ts), ts)
        self._last_activity[key] = now_ms
        emitted += self._close_due(user_id, state, self.watermark(partition), now_ms)
        return Step(user_id, state, emitted)

    def _touching(self, sessions: list[Session], ts: int) -> list[Session]:
        return [s for s in sessions if s["start"] - self.gap_ms < ts < s["end"] + self.gap_ms]

    @staticmethod
    def _seen(state: dict[str, Any], event_id: str) -> bool:
        sessions = [*state["open"], *state["closed"]]
        return any(event_id in s["ids"] for s in sessions)

    def commit(self, step: Step) -> None:
        """Persist a step's state (after its sessions were delivered)."""
        self._store(step.user_id, step.state)

    def _place(self, state: dict[str, Any], event: dict[str, Any], ts: int) -> Session:
        touching = self._touching(state["open"], ts)
        rest = [s for s in state["open"] if s not in touching]
        session = touching[0] if touching else _new_session(event, ts)
        for other in touching[1:]:
            _merge(session, other)
        _add(session, event, ts)
        state["open"] = sorted([*rest, session], key=lambda s: s["start"])
        return session

    def _correct(
        self, user_id: str, state: dict[str, Any], closed: Session, event: dict[str, Any], ts: int
    ) -> Session:
        _add(closed, event, ts)
        closed["late"] += 1
        # Open sessions the event now bridges to belong to the emitted one too.
        for other in self._touching(state["open"], ts):
            _merge(closed, other)
            state["open"].remove(other)
        self.metrics.sessions.labels(kind="correction").inc()
        return self._to_record(user_id, closed, correction=True)

    def _close_due(
        self, user_id: str, state: dict[str, Any], watermark: int | None, now_ms: int
    ) -> list[Session]:
        if watermark is None:
            return []
        emitted = []
        still_open = []
        for session in state["open"]:
            if watermark >= session["end"] + self.gap_ms:
                session["id"] = f"{user_id}:{session['start']}"
                session["closed_at"] = now_ms
                emitted.append(self._to_record(user_id, session, correction=False))
                state["closed"].append(session)
                self.metrics.sessions.labels(kind="closed").inc()
            else:
                still_open.append(session)
        state["open"] = still_open
        # Forgotten once no late event or replayed copy can reach them: bounded memory.
        horizon = watermark - 2 * self.gap_ms - self.lateness_ms - self.dedup_ms
        state["closed"] = [s for s in state["closed"] if s["end"] >= horizon]
        return emitted

    def _store(self, user_id: str, state: dict[str, Any]) -> None:
        if state["open"] or state["closed"]:
            self.users[user_id] = state
        elif user_id in self.users:
            del self.users[user_id]

    def forget_partitions(self, keep: set[int]) -> None:
        """Drop the watermarks of partitions this worker no longer owns: if one comes back
        after another worker moved it on, it starts again from its events."""
        for key in [key for key in self.watermarks if int(key) not in keep]:
            del self.watermarks[key]
            self._last_activity.pop(key, None)

    def sweep(self, now_ms: int, partitions: set[int] | None = None) -> list[Step]:
        """Close due sessions of the users of ``partitions`` (all if None); idle partitions
        advance with the wall clock. A worker passes the partitions it owns: its table
        also holds standby copies of other workers' users, which are theirs to close."""
        for key, last_activity in list(self._last_activity.items()):
            if partitions is not None and int(key) not in partitions:
                continue
            idle_for = now_ms - last_activity
            if idle_for >= self.idle_ms and key in self.watermarks:
                self.watermarks[key] = self.watermarks[key] + int(idle_for)
                self._last_activity[key] = now_ms
        steps: list[Step] = []
        still_open = 0
        for user_id, state in list(self.users.items()):
            if partitions is not None and state["p"] not in partitions:
                continue
            emitted = self._close_due(user_id, state, self.watermark(state["p"]), now_ms)
            still_open += len(state["open"])
            if emitted or (not state["open"] and not state["closed"]):
                steps.append(Step(user_id, state, emitted))
        self.metrics.open_sessions.set(still_open)
        return steps

    @staticmethod
    def _to_record(user_id: str, session: Session, *, correction: bool) -> Session:
        pages = [url for url, _ in sorted(session["pages"].items(), key=lambda item: item[1])]
        return {
            "session_id": session["id"],
            "user_id": user_id,
            "start_ts": datetime.fromtimestamp(session["start"] / 1000, UTC),
            "end_ts": datetime.fromtimestamp(session["end"] / 1000, UTC),
            "duration_ms": session["end"] - session["start"],
            "event_count": session["count"],
            "page_count": len(session["pages"]),
            "pages": pages,
            "device_class": session["device"],
            "is_bot": False,
            "first_event_id": session["first"][1],
            "last_event_id": session["last"][1],
            "late_events": session["late"],
            "is_correction": correction,
            "closed_ts": datetime.fromtimestamp(session["closed_at"] / 1000, UTC),
        }
