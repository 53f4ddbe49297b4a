"""Bot filtering: crawler user agents plus behavioural rules, with the rule that fired.

Rules, checked in order (the first that fires is recorded):

- ``crawler_user_agent``: the user agent is a crawler's, a script's or no browser's
  (CrawlerDetect, then streamlearn's own rules: ``agents/user_agents.py``).
- ``user_rate``: more than ``bot_max_events_per_user`` events of one user in a rate window.
- ``ip_rate``: more than ``bot_max_events_per_ip`` events from one IP in a rate window.
- ``inhuman_burst``: ``bot_burst_length`` consecutive events of one user, each less than
  ``bot_min_interval_ms`` after the previous.

Behavioural rules run on the time events were *received* (the system's clock, carried in
the record), so replaying a topic flags exactly the same events. Their state lives in the
partition's mapping the step is given, so it moves and expires with its partition; an IP
seen by several partitions is therefore counted per partition.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass

from streamlearn.agents.user_agents import UserAgentInfo
from streamlearn.settings import Settings

RULES = ("crawler_user_agent", "user_rate", "ip_rate", "inhuman_burst")


@dataclass(frozen=True)
class BotRules:
    window_ms: int
    max_per_user: int
    max_per_ip: int
    min_interval_ms: float
    burst_length: int

    @classmethod
    def from_settings(cls, settings: Settings) -> BotRules:
        return cls(
            window_ms=int(settings.bot_rate_window_s * 1000),
            max_per_user=settings.bot_max_events_per_user,
            max_per_ip=settings.bot_max_events_per_ip,
            min_interval_ms=settings.bot_min_interval_ms,
            burst_length=settings.bot_burst_length,
        )


def _count_in_window(state: MutableMapping[str, list[int]], key: str, window: int) -> int:
    """Count this event in its fixed window; returns the count so far in that window."""
    current = state.get(key)
    if current is None or current[0] != window:
        current = [window, 0]
    current[1] += 1
    state[key] = current
    return current[1]


def _user_counters(
    state: MutableMapping[str, list[int]], key: str, window: int, received_ms: int, gap_ms: float
) -> tuple[int, int]:
    """One entry per user — [window, count in it, last received ms, burst streak] — so an
    event costs one state write for its user, not one per rule."""
    current = state.get(key)
    count, streak = 1, 1
    if current is not None:
        if current[0] == window:
            count = current[1] + 1
        if 0 <= received_ms - current[2] < gap_ms:
            streak = current[3] + 1
    state[key] = [window, count, received_ms, streak]
    return count, streak


def bot_rule(
    rules: BotRules,
    state: MutableMapping[str, list[int]],
    user_id: str,
    ip: str | None,
    received_ms: int,
    agent: UserAgentInfo,
) -> str | None:
    """The rule that marks this event as a bot's, or None for a human's.

    Every behavioural counter is updated for every event, bot or not, so a bot stays
    flagged for the rest of its window.
    """
    window = received_ms // rules.window_ms
    user_count, streak = _user_counters(
        state, f"u|{user_id}", window, received_ms, rules.min_interval_ms
    )
    ip_count = _count_in_window(state, f"ip|{ip}", window) if ip else 0

    if agent.crawler:
        return "crawler_user_agent"
    if user_count > rules.max_per_user:
        return "user_rate"
    if ip_count > rules.max_per_ip:
        return "ip_rate"
    if streak >= rules.burst_length:
        return "inhuman_burst"
    return None


def expire_bot_state(state: MutableMapping[str, list[int]], rules: BotRules, now_ms: int) -> int:
    """Forget a partition's counters of past windows; returns how many were removed."""
    window = now_ms // rules.window_ms
    stale = []
    for key, value in list(state.items()):
        if value[0] >= window:
            continue
        if not key.startswith("u|") or now_ms - value[2] > rules.window_ms:
            stale.append(key)
    for key in stale:
        del state[key]
    return len(stale)
