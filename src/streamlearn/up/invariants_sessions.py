"""Invariant of a chaos run: the sessions on ``events.sessions`` equal the offline reference.

The reference is the sessionise agent's own rules (:class:`~streamlearn.agents.sessions.
Sessioniser`, not a second implementation) run again in memory over the committed
``events.clean``, each partition in offset order, decoded as the agent decodes it (event
times as epoch ms, event ids as strings), with no wall clock: the sessions the log alone
closes, plus those still open at its end.

What "equal" means, given how sessionise writes:

- **A session is its newest record.** Sessionise is at-least-once with identical
  re-emission (outputs, then its state, then its offsets; no transaction): a restarted
  sessionise re-emits the sessions of the batch it re-runs, the same records but for
  ``closed_ts`` (processing time): such copies are counted, not judged. A late event
  re-emits its session as a correction (same ``session_id``), which supersedes it. So
  per ``session_id`` the newest record (in its partition's offsets) is the session (none
  when that record is a retraction, ``merged_into`` set: a late event bridged it and an
  earlier session, which now holds its events), and it is compared by user, start, end,
  event count, page count and first and last event id (``closed_ts``, ``late_events``
  and ``is_correction`` depend on when the records were read, not on what they say).
- **Every session the log closes is there, equal, and nothing else but** the reference's
  sessions still open at the log's end: the agent closes those by its idle timer once
  the traffic stopped, or still holds them when the drain ends (counted apart).
- **Except where a quiet live partition's timer decided.** A partition quiet for the idle
  time (an agent upstream paused, the broker away) lets the agent's event time move on
  the wall clock and close sessions earlier than the log alone would; an event then read
  late corrects the session it touches and merges two it bridges (retracting the
  second), which gives back what the log says once the agent has read its events. A
  user whose sessions still differ only so, each of the agent's lying within one
  reference session and together holding its events (all of them, once the log closed
  it), is counted as split by the timer, not as a violation: before the merges, a
  bridging event left such splits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from streamlearn.agents.sessions import Sessioniser, SessionRules, retracted
from streamlearn.up.report import Check

Located = tuple[int, int, dict[str, Any]]
"""(partition, offset, decoded value)."""
Shape = tuple[int, int, int, int, str, str]
"""What a session says: start ms, end ms, events, pages, first and last event id."""

NAME = "sessions equal the offline reference"


def _ms(value: Any) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)


def shape(session: dict[str, Any]) -> Shape:
    return (
        _ms(session["start_ts"]),
        _ms(session["end_ts"]),
        int(session["event_count"]),
        int(session["page_count"]),
        str(session["first_event_id"]),
        str(session["last_event_id"]),
    )


def _without_closed_ts(session: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in session.items() if k != "closed_ts"}


def reference_sessions(
    clean: Iterable[Located], rules: SessionRules
) -> tuple[dict[str, Counter[Shape]], dict[str, Counter[Shape]]]:
    """(closed by the log, still open at its end): user → sessions, from ``events.clean``
    decoded plain."""
    closed: dict[str, dict[str, dict[str, Any]]] = {}
    partitions: dict[int, Sessioniser] = {}
    for partition, _, event in sorted(clean, key=lambda r: (r[0], r[1])):
        sessioniser = partitions.get(partition)
        if sessioniser is None:
            sessioniser = partitions[partition] = Sessioniser(rules, {}, {})
        for session in sessioniser.take(event):
            closed.setdefault(str(session["user_id"]), {})[str(session["session_id"])] = session
    still_open: dict[str, Counter[Shape]] = {}
    for sessioniser in partitions.values():
        for session in sessioniser.open_sessions():
            still_open.setdefault(str(session["user_id"]), Counter())[shape(session)] += 1
    by_user = {u: Counter(shape(s) for s in ids.values()) for u, ids in closed.items()}
    return by_user, still_open


def emitted_sessions(sessions: Iterable[Located]) -> tuple[dict[str, Counter[Shape]], int, int]:
    """(user → the newest record of each session id, identical copies, corrections)."""
    newest: dict[str, dict[str, Any]] = {}
    copies = corrections = 0
    for _, _, record in sorted(sessions, key=lambda r: (r[0], r[1])):
        session_id = str(record["session_id"])
        before = newest.get(session_id)
        if before is not None and _without_closed_ts(before) == _without_closed_ts(record):
            copies += 1
            continue
        corrections += bool(record["is_correction"])
        newest[session_id] = record
    by_user: dict[str, Counter[Shape]] = {}
    for record in newest.values():
        if retracted(record):
            continue  # retracted: its events are in the session it was merged into
        by_user.setdefault(str(record["user_id"]), Counter())[shape(record)] += 1
    return by_user, copies, corrections


def _split_by_timer(agent: Counter[Shape], closed: Counter[Shape], open_: Counter[Shape]) -> bool:
    """Whether the agent's sessions not in the reference are pieces of the reference's
    sessions it misses: each within one of them, together all of its events; of one
    still open at the log's end, the agent may still hold the last piece open (its pieces
    then end before it does, and hold fewer events)."""
    pieces = agent - closed - open_
    wholes = (closed + open_) - agent
    if not pieces:
        return False
    held: Counter[Shape] = Counter()
    last_held: set[Shape] = set()
    for piece, n in pieces.items():
        around = [w for w in wholes if w[0] <= piece[0] and piece[1] <= w[1]]
        if len(around) != 1:
            return False
        held[around[0]] += piece[2] * n
        if piece[1] == around[0][1]:
            last_held.add(around[0])
    for whole, n in wholes.items():
        complete = held[whole] == whole[2] * n
        last_open = whole in open_ and whole not in last_held and held[whole] < whole[2] * n
        if not (complete or last_open):
            return False
    return True


def _some(items: Iterable[str], n: int = 3) -> str:
    chosen = sorted(items)[:n]
    return f" (e.g. {', '.join(chosen)})" if chosen else ""


def sessions_equal(
    clean: Iterable[Located], sessions: Iterable[Located], rules: SessionRules
) -> Check:
    """``clean``: ``events.clean`` decoded plain; ``sessions``: ``events.sessions``."""
    closed, still_open = reference_sessions(clean, rules)
    agent, copies, corrections = emitted_sessions(sessions)
    equal = after_traffic = open_at_end = 0
    split: set[str] = set()
    missing: set[str] = set()
    differing: set[str] = set()
    for user in sorted(closed.keys() | still_open.keys() | agent.keys()):
        mine, logged = agent.get(user, Counter()), closed.get(user, Counter())
        pending = still_open.get(user, Counter())
        equal += sum((mine & logged).values())
        after_traffic += sum((mine & pending).values())
        open_at_end += sum((pending - mine).values())
        unmatched_logged = logged - mine
        unmatched_mine = mine - logged - pending
        if not unmatched_logged and not unmatched_mine:
            continue
        if _split_by_timer(mine, logged, pending):
            split.add(user)
        else:
            missing |= {f"{user}@{s[0]}" for s in unmatched_logged}
            differing |= {f"{user}@{s[0]}" for s in unmatched_mine}
    reference = sum(sum(c.values()) for c in closed.values())
    detail = (
        f"{reference:,} sessions closed by the log: {equal:,} equal on events.sessions, "
        f"missing {len(missing)}{_some(missing)}; on events.sessions but not in the "
        f"reference {len(differing)}{_some(differing)}; still open at the log's end "
        f"{after_traffic + open_at_end:,} ({after_traffic:,} closed by the agent's timer "
        f"after the traffic); users whose sessions a quiet partition's timer split "
        f"{len(split)}{_some(split)}; corrections {corrections:,}, identical copies "
        f"re-emitted {copies:,}"
    )
    return Check(NAME, not missing and not differing, detail)
