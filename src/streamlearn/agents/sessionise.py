"""The sessionise agent: ``events.clean`` → ``events.sessions``.

Inactivity-gap sessions per user on event time, with allowed lateness. Two events of a
user belong to one session when their event times are less than the gap apart. A
partition's event time is the newest its records carried (a
:class:`~streamlearn.runtime.event_time.EventClock` in the partition's state); its
watermark is that minus the allowed lateness. A session closes, and is emitted, as soon
as a record moves the watermark past its end plus the gap: no event that is not late can
extend it any more. So which sessions come out, and when in the stream, depends on the
records alone: the same log read at any speed, after any pause, gives the same sessions.
Only a *live* partition that has gone quiet lets the timer close sessions on the wall
clock (event time advancing at the wall clock's rate from the newest record).

An event older than the watermark is *late*. It is counted, and then, per
``session_late_policy``: attached to the user's still-open session it falls into; merged
into the user's emitted session it touches and re-emitted as a correction
(``is_correction=true``, same ``session_id``); or dropped (``drop``). Late events merge
with each other the same way, through corrections.

State per user (the partition's ``sessions`` store): ``{"open": [...], "closed": [...]}``.
Emitted sessions are remembered (in ``closed``) until the watermark is ``2 gaps + allowed
lateness + dedup_window_s`` past their end plus a gap, and an event that much behind the
watermark is dropped as ``expired`` (counted): so every event that is not expired finds
the sessions it touches, and a copy of an event read again after a crash is recognised by
the ids its session remembers, or is expired like its original. Sessions re-emitted after
a crash are the same records (same id, same contents) except ``closed_ts``, the
processing time of the close.
"""

from __future__ import annotations

import heapq
from collections.abc import MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

from streamlearn.runtime.event_time import EventClock, live_lag_ms
from streamlearn.runtime.metrics import AgentMetrics
from streamlearn.runtime.step import Emit, Record, Step
from streamlearn.settings import Settings

AGENT = "sessionise"
MAX_PAGES = 200
MAX_REMEMBERED_IDS = 10_000
CLOCK = "event_time"

Session = dict[str, Any]
UserState = dict[str, Any]


def _millis(moment: datetime | int) -> int:
    """Epoch ms of an event time: decoded by the runtime as the long it is on the wire
    (``plain_inputs``), or a ``datetime`` (tests and callers feeding decoded records)."""
    if type(moment) is int:
        return moment
    assert isinstance(moment, datetime)
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


def _seen(state: UserState, event_id: str) -> bool:
    return any(event_id in s["ids"] for s in (*state["open"], *state["closed"]))


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


class SessioniseStep(Step):
    """The agent (see the module docstring)."""

    name = AGENT
    inputs = ("events.clean",)
    outputs = ("events.sessions",)
    stores = ("sessions", "clock")
    tick_every_s = 1.0
    plain_inputs = True  # event times as epoch ms, event ids as strings: what it computes with

    def __init__(self, settings: Settings, metrics: AgentMetrics) -> None:
        self.gap_ms = int(settings.session_gap_s * 1000)
        self.lateness_ms = int(settings.session_allowed_lateness_s * 1000)
        self.dedup_ms = int(settings.dedup_window_s * 1000)
        self.late_policy = settings.session_late_policy
        self.clock = EventClock(
            CLOCK,
            idle_ms=int(settings.session_idle_s * 1000),
            live_lag_ms=live_lag_ms(self.lateness_ms),
        )
        self.metrics = metrics
        self._due: dict[int, list[tuple[int, str]]] = {}
        """partition → heap of (end + gap, user id) of open sessions (some stale)."""

    # -- partitions ----------------------------------------------------------------------

    def opened(self, partition: int) -> None:
        due = []
        for user_id, state in self.state.of("sessions", partition).items():
            due += [(session["end"] + self.gap_ms, user_id) for session in state["open"]]
            if state["closed"]:
                due.append((self._forget_at(state), user_id))
        heapq.heapify(due)
        self._due[partition] = due

    def closing(self, partition: int, emit: Emit) -> None:
        self._due.pop(partition, None)

    # -- records and time ----------------------------------------------------------------

    def process(self, partition: int, records: Sequence[Record], emit: Emit) -> None:
        users = self.state.of("sessions", partition)
        clock = self.state.of("clock", partition)
        send = emit.to("events.sessions")
        for record in records:
            event = record.value
            ts = _millis(event["event_ts"])
            newest = self.clock.time(clock)
            watermark = None if newest is None else newest - self.lateness_ms
            self._add_event(partition, users, event, ts, watermark, send)
            newest = self.clock.observe(clock, ts)
            self._close_due(partition, users, newest - self.lateness_ms, send)

    def tick(self, partition: int, now_ms: int, read_ms: int | None, emit: Emit) -> None:
        users = self.state.of("sessions", partition)
        now = self.clock.advance_live(self.state.of("clock", partition), now_ms, read_ms)
        if now is not None:
            self._close_due(partition, users, now - self.lateness_ms, emit.to("events.sessions"))
        self.metrics.open_sessions.set(
            sum(len(state["open"]) for p in self.state.partitions()
                for state in self.state.of("sessions", p).values())
        )  # fmt: skip

    # -- sessions ------------------------------------------------------------------------

    def _add_event(
        self,
        partition: int,
        users: MutableMapping[str, UserState],
        event: dict[str, Any],
        ts: int,
        watermark: int | None,
        send: Any,
    ) -> None:
        user_id = event["user_id"]
        if watermark is not None and ts < watermark - self._remembered_ms():
            # Further behind than emitted sessions are remembered: no session it belongs to
            # is known any more, and a copy read again could not be told from a first
            # arrival. Dropped, counted (so a replay after a crash adds nothing either).
            self.metrics.late_events.labels(handling="expired").inc()
            return
        state = users.get(user_id) or {"open": [], "closed": []}
        if _seen(state, str(event["event_id"])):
            return
        late = watermark is not None and ts < watermark
        closed = self._touching(state["closed"], ts)
        if late and self.late_policy == "drop" and not self._touching(state["open"], ts):
            self.metrics.late_events.labels(handling="dropped").inc()
            return
        if closed:
            # The event belongs to a session already emitted (late, or closed by a quiet
            # live stream's timer): the emitted session is corrected.
            send(user_id, self._correct(user_id, state, closed[0], event, ts))
            if late:
                self.metrics.late_events.labels(handling="correction").inc()
        else:
            session = self._place(state, event, ts)
            heapq.heappush(self._due[partition], (session["end"] + self.gap_ms, user_id))
            if late:
                session["late"] += 1
                handling = "attached" if session["count"] > 1 else "new_session"
                self.metrics.late_events.labels(handling=handling).inc()
        users[user_id] = state

    def _touching(self, sessions: list[Session], ts: int) -> list[Session]:
        return [s for s in sessions if s["start"] - self.gap_ms < ts < s["end"] + self.gap_ms]

    def _place(self, state: UserState, event: dict[str, Any], ts: int) -> Session:
        touching = self._touching(state["open"], ts)
        rest = [s for s in state["open"] if s not in touching]
        session = touching[0] if touching else _new_session(event, ts)
        for other in touching[1:]:
            _merge(session, other)
        _add(session, event, ts)
        state["open"] = sorted([*rest, session], key=lambda s: s["start"])
        return session

    def _correct(
        self, user_id: str, state: UserState, closed: Session, event: dict[str, Any], ts: int
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
        self, partition: int, users: MutableMapping[str, UserState], watermark: int, send: Any
    ) -> None:
        """Emit every session of the partition whose end plus the gap the watermark passed."""
        due = self._due[partition]
        while due and due[0][0] <= watermark:
            _, user_id = heapq.heappop(due)
            state = users.get(user_id)
            if state is None:
                continue  # a stale entry: the user's sessions were closed and forgotten
            for session in self._close_user(partition, user_id, state, watermark):
                send(user_id, session)
            if state["open"] or state["closed"]:
                users[user_id] = state
            else:
                del users[user_id]

    def _close_user(
        self, partition: int, user_id: str, state: UserState, watermark: int
    ) -> list[Session]:
        emitted = []
        still_open = []
        for session in state["open"]:
            if watermark >= session["end"] + self.gap_ms:
                session["id"] = f"{user_id}:{session['start']}"
                session["closed_at"] = self.wall_clock()
                emitted.append(self._to_record(user_id, session, correction=False))
                state["closed"].append(session)
                self.metrics.sessions.labels(kind="closed").inc()
            else:
                still_open.append(session)
        state["open"] = still_open
        # Forgotten once no event that is not expired can touch them: bounded memory.
        horizon = watermark - self._remembered_ms() - self.gap_ms
        state["closed"] = [s for s in state["closed"] if s["end"] >= horizon]
        if state["closed"]:
            heapq.heappush(self._due[partition], (self._forget_at(state), user_id))
        return emitted

    def _remembered_ms(self) -> int:
        """How far behind the watermark an emitted session is still kept."""
        return 2 * self.gap_ms + self.lateness_ms + self.dedup_ms

    def _forget_at(self, state: UserState) -> int:
        """The watermark at which the user's newest emitted session may be forgotten."""
        newest_end: int = max(s["end"] for s in state["closed"])
        return newest_end + self._remembered_ms() + self.gap_ms + 1

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
