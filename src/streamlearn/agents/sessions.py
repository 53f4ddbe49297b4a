"""Inactivity-gap sessions of one partition: the rules, apart from the agent that runs them.

Two events of a user belong to one session when their event times are less than the gap
apart, and no session spans a multiple of the cut (``session_cut_s``, UTC midnight by
default) since the epoch: a user who never pauses still has sessions that close, cut at
the same instants whichever record a reader starts from. A partition's event time is the
newest its records carried (a :class:`~streamlearn.runtime.event_time.EventClock` in the
partition's ``clock`` state); its watermark is that minus the allowed lateness. A session
closes, and is emitted, as soon as a record moves the watermark past its end plus the gap,
or past the cut after its start: no event that is not late can extend it any more. So
which sessions come out, and when in the stream, depends on the records alone: the same
log read at any speed, after any pause, gives the same sessions. Only a *live* partition
that has gone quiet lets the timer (:meth:`Sessioniser.advance_live`) close sessions on the
wall clock (event time advancing at the wall clock's rate from the newest record).

An event older than the watermark is *late*. It is counted, and then, per the late
policy: attached to the user's still-open session it falls into; merged into the user's
emitted session it touches and re-emitted as a correction (``is_correction=true``, same
``session_id``); or dropped (``drop``). Late events merge with each other the same way,
through corrections.

State per user (the partition's ``sessions`` mapping): ``{"open": [...], "closed": [...]}``.
Emitted sessions are remembered (in ``closed``) until the watermark is ``2 gaps + allowed
lateness + dedup window`` past their end plus a gap, and an event that much behind the
watermark is dropped as ``expired`` (counted): so every event that is not expired finds
the sessions it touches, and a copy of an event read again after a crash is recognised by
the ids its session remembers, or is expired like its original. Sessions re-emitted after
a crash are the same records (same id, same contents) except ``closed_ts``, the
processing time of the close.

:class:`Sessioniser` is the whole of it for one partition, over plain mappings: the
sessionise agent runs one per partition over its stores, and the chaos invariants run it
offline over ``events.clean`` (:mod:`streamlearn.up.invariants_sessions`).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from streamlearn.runtime.event_time import EventClock, live_lag_ms
from streamlearn.settings import Settings

MAX_PAGES = 200
MAX_PAGE_BYTES = 512
"""A session keeps each page's URL to this many bytes of UTF-8 (cut at a character). A
user's state is one record of the store's changelog (Kafka's default 1 MB message
limit): 200 pages of the 8,192 characters the collector takes made it 1.6 MB, and
sessionise stopped at that user's batch at every restart (found by a probe: no session of
anybody was emitted). 200 pages of 512 bytes leave room for a few sessions of a user."""
MAX_REMEMBERED_IDS = 10_000
CLOCK = "event_time"

Session = dict[str, Any]
UserState = dict[str, Any]
Count = Callable[[str, str], None]
"""``count(family, kind)``: ``("sessions", "closed" | "correction")`` or
``("late_events", "attached" | "new_session" | "correction" | "dropped" | "expired")``."""


def _uncounted(family: str, kind: str) -> None:
    return None


def event_millis(moment: datetime | int) -> int:
    """Epoch ms of an event time: decoded by the runtime as the long it is on the wire
    (``plain_inputs``), or a ``datetime`` (tests and callers feeding decoded records)."""
    if type(moment) is int:
        return moment
    assert isinstance(moment, datetime)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class SessionRules:
    """The settings sessions are cut by."""

    gap_ms: int
    lateness_ms: int
    dedup_ms: int
    late_policy: Literal["correction", "drop"]
    idle_ms: int
    cut_ms: int = 86_400_000
    """Sessions never span a multiple of this since the epoch (event time)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionRules:
        return cls(
            gap_ms=int(settings.session_gap_s * 1000),
            lateness_ms=int(settings.session_allowed_lateness_s * 1000),
            dedup_ms=int(settings.dedup_window_s * 1000),
            late_policy=settings.session_late_policy,
            idle_ms=int(settings.session_idle_s * 1000),
            cut_ms=int(settings.session_cut_s * 1000),
        )

    @property
    def remembered_ms(self) -> int:
        """How far behind the watermark an emitted session is still kept."""
        return 2 * self.gap_ms + self.lateness_ms + self.dedup_ms

    def closes_at(self, session: Session) -> int:
        """The watermark that closes ``session``: a gap after its end, or the cut after its
        start, whichever comes first (events from the cut on make a new session)."""
        end: int = session["end"]
        return min(end + self.gap_ms, self.cut_after(session["start"]))

    def cut_after(self, ts: int) -> int:
        """The first cut after event time ``ts``."""
        return (ts // self.cut_ms + 1) * self.cut_ms

    def clock(self) -> EventClock:
        return EventClock(CLOCK, idle_ms=self.idle_ms, live_lag_ms=live_lag_ms(self.lateness_ms))


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
        if len(url) > MAX_PAGE_BYTES // 4:  # shorter, it fits whatever its characters
            url = _cut(url)
        pages = session["pages"]
        if url in pages:
            pages[url] = min(pages[url], ts)
        elif len(pages) < MAX_PAGES:
            pages[url] = ts


def _cut(url: str) -> str:
    """``url`` in at most :data:`MAX_PAGE_BYTES` of UTF-8, cut at a character."""
    data = url.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_PAGE_BYTES:
        return url
    return data[:MAX_PAGE_BYTES].decode("utf-8", "ignore")


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


def session_record(
    user_id: str, session: Session, *, correction: bool, merged_into: str | None = None
) -> Session:
    """The ``Session`` record of a closed session; with ``merged_into``, its retraction
    (the session is now part of that one)."""
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
        "merged_into": merged_into,
    }


def retracted(record: Session) -> bool:
    """Whether a ``Session`` record retracts its session (``merged_into`` set; records
    written before the field existed have none): a consumer keeping the newest record per
    ``session_id`` drops that session."""
    return record.get("merged_into") is not None


class Sessioniser:
    """One partition's sessions over its state: ``users`` (user id → state) and ``clock``
    (the event time). :meth:`take` and :meth:`advance_live` return the session records
    to emit, keyed by their ``user_id``. ``wall_clock`` gives ``closed_ts``."""

    def __init__(
        self,
        rules: SessionRules,
        users: MutableMapping[str, UserState],
        clock: MutableMapping[str, Any],
        *,
        wall_clock: Callable[[], int] = lambda: 0,
        count: Count = _uncounted,
    ) -> None:
        self.rules = rules
        self.users = users
        self.clock_state = clock
        self.clock = rules.clock()
        self.wall_clock = wall_clock
        self.count = count
        self._due: list[tuple[int, str]] = []
        """Heap of (time, user id): open sessions' end + gap (one per event taken, most of
        them stale by the time they are due) and users' forget times."""
        self._forget: dict[str, int] = {}
        """user id → the forget time in the heap (one per user, not one per event)."""
        self.reindex()

    def reindex(self) -> None:
        """Rebuild the in-memory schedule from the state."""
        due, self._forget = [], {}
        for user_id, state in self.users.items():
            due += [(self.rules.closes_at(session), user_id) for session in state["open"]]
            if state["closed"]:
                self._forget[user_id] = self._forget_at(state)
                due.append((self._forget[user_id], user_id))
        heapq.heapify(due)
        self._due = due

    def scheduled(self) -> int:
        """Close and forget times waiting (stale ones included)."""
        return len(self._due)

    def take(self, event: dict[str, Any]) -> list[Session]:
        """One ``CleanEvent``, in the partition's log order."""
        ts = event_millis(event["event_ts"])
        newest = self.clock.time(self.clock_state)
        watermark = None if newest is None else newest - self.rules.lateness_ms
        emitted = self._add_event(event, ts, watermark)
        newest = self.clock.observe(self.clock_state, ts)
        return emitted + self._close_due(newest - self.rules.lateness_ms)

    def advance_live(self, now_ms: int, read_ms: int | None) -> list[Session]:
        """A timer's turn (see :meth:`EventClock.advance_live`)."""
        now = self.clock.advance_live(self.clock_state, now_ms, read_ms)
        return [] if now is None else self._close_due(now - self.rules.lateness_ms)

    def open_sessions(self) -> list[Session]:
        """The sessions not closed yet, as their records would be if they closed now."""
        records = []
        for user_id, state in self.users.items():
            for session in state["open"]:
                opened = {**session, "id": f"{user_id}:{session['start']}", "closed_at": 0}
                records.append(session_record(user_id, opened, correction=False))
        return records

    # -- events ----------------------------------------------------------------------------

    def _add_event(self, event: dict[str, Any], ts: int, watermark: int | None) -> list[Session]:
        user_id = event["user_id"]
        if watermark is not None and ts < watermark - self.rules.remembered_ms:
            # Further behind than emitted sessions are remembered: no session it belongs to
            # is known any more, and a copy read again could not be told from a first
            # arrival. Dropped, counted (so a replay after a crash adds nothing either).
            self.count("late_events", "expired")
            return []
        state = self.users.get(user_id) or {"open": [], "closed": []}
        if _seen(state, str(event["event_id"])):
            return []
        late = watermark is not None and ts < watermark
        closed = self._touching(state["closed"], ts)
        if late and self.rules.late_policy == "drop" and not self._touching(state["open"], ts):
            self.count("late_events", "dropped")
            return []
        emitted = []
        if closed:
            # The event belongs to a session already emitted (late, or closed by a quiet
            # live stream's timer): the emitted session is corrected.
            emitted += self._correct(user_id, state, closed, event, ts)
            if late:
                self.count("late_events", "correction")
        else:
            session = self._place(state, event, ts)
            heapq.heappush(self._due, (self.rules.closes_at(session), user_id))
            if late:
                session["late"] += 1
                self.count("late_events", "attached" if session["count"] > 1 else "new_session")
        self.users[user_id] = state
        return emitted

    def _touching(self, sessions: list[Session], ts: int) -> list[Session]:
        gap, cut = self.rules.gap_ms, self.rules.cut_ms
        period = ts // cut
        return [
            s
            for s in sessions
            if s["start"] - gap < ts < s["end"] + gap and s["start"] // cut == period
        ]

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
        self,
        user_id: str,
        state: UserState,
        touched: list[Session],
        event: dict[str, Any],
        ts: int,
    ) -> list[Session]:
        """The records that ``event`` changes, touching the emitted sessions ``touched``:
        the first of them corrected, and a retraction of each other one it bridges to."""
        closed, *bridged = sorted(touched, key=lambda s: s["start"])
        _add(closed, event, ts)
        closed["late"] += 1
        # Open sessions the event now bridges to belong to the emitted one too.
        for other in self._touching(state["open"], ts):
            _merge(closed, other)
            state["open"].remove(other)
        # So do emitted ones: each is retracted (merged_into), or the user kept two
        # sessions where the events make one (what reading them in order gives).
        retractions = []
        for other in bridged:
            _merge(closed, other)
            state["closed"].remove(other)
            retractions.append(
                session_record(user_id, other, correction=True, merged_into=closed["id"])
            )
        self.count("sessions", "correction")
        return [session_record(user_id, closed, correction=True), *retractions]

    # -- time ------------------------------------------------------------------------------

    def _close_due(self, watermark: int) -> list[Session]:
        """Every session whose close time (:meth:`SessionRules.closes_at`) the watermark
        passed."""
        due, emitted = self._due, []
        while due and due[0][0] <= watermark:
            _, user_id = heapq.heappop(due)
            state = self.users.get(user_id)
            if state is None:
                continue  # a stale entry: the user's sessions were closed and forgotten
            emitted += self._close_user(user_id, state, watermark)
            if state["open"] or state["closed"]:
                self.users[user_id] = state
            else:
                del self.users[user_id]
        return emitted

    def _close_user(self, user_id: str, state: UserState, watermark: int) -> list[Session]:
        emitted = []
        still_open = []
        for session in state["open"]:
            if watermark >= self.rules.closes_at(session):
                session["id"] = f"{user_id}:{session['start']}"
                session["closed_at"] = self.wall_clock()
                emitted.append(session_record(user_id, session, correction=False))
                state["closed"].append(session)
                self.count("sessions", "closed")
            else:
                still_open.append(session)
        state["open"] = still_open
        # Forgotten once no event that is not expired can touch them: bounded memory.
        horizon = watermark - self.rules.remembered_ms - self.rules.gap_ms
        state["closed"] = [s for s in state["closed"] if s["end"] >= horizon]
        if not state["closed"]:
            self._forget.pop(user_id, None)
        elif self._forget.get(user_id) != (at := self._forget_at(state)):
            # Scheduled once per forget time: every stale close time of the user's events
            # comes here, and scheduling each again kept one entry per event ever read.
            self._forget[user_id] = at
            heapq.heappush(self._due, (at, user_id))
        return emitted

    def _forget_at(self, state: UserState) -> int:
        """The watermark at which the user's newest emitted session may be forgotten."""
        newest_end: int = max(s["end"] for s in state["closed"])
        return newest_end + self.rules.remembered_ms + self.rules.gap_ms + 1
