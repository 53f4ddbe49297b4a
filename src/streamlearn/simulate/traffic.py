"""What happens, in time order: page views, bot hits, duplicates, late and malformed events,
and for recommendation slots the true outcome (seen? clicked? converted?) decided up front.

:class:`Traffic` is pure and deterministic: the same :class:`TrafficConfig` (seed included),
start time and id generator give the same :class:`Hit` stream, whatever the servers answer.
The loop sends it; only request ids come from the prediction worker.

Rates. ``rate`` is page views per second, bots included; ``bot_share`` of them come from bots
(half crawlers with crawler user agents, half behavioural bots with browser user agents that
load bursts of pages 10-30 ms apart). People visit in sessions: on average 6 page views with
log-normal gaps (median 6 s, at least 0.5 s), then an exponential pause, sized so that
``users`` people make the requested rate. When the rate per person is too high for
human-looking sessions (more than ~0.1 page views/s each), the in-session gaps shrink too
(never below 0.5 s); give more ``users`` to keep them realistic.

Changes (:mod:`~streamlearn.simulate.changes`, ``TrafficConfig.changes``) break the world at a
chosen second, deterministically. A change never alters what is drawn before its second
(the bot wave's actors come from a generator of their own), and a config without changes
gives exactly the hits it gave before changes existed (a test pins a digest of them).
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamlearn.models.inputs import FeatureValue
from streamlearn.models.synthetic import CATEGORIES, PLACEMENTS, VALUE_MEANS
from streamlearn.simulate.changes import (
    BOT_WAVE_SHARE,
    FIELD_DROPPED_SUFFIX,
    PRICE_SHIFT,
    ChangeKind,
)
from streamlearn.simulate.traffic_types import (
    Hit,
    HitKind,
    Slot,
    TrafficConfig,
    seeded_ids,
)
from streamlearn.simulate.truth import Truth
from streamlearn.simulate.world import Actor, make_burst_bot, make_crawler, make_human

__all__ = ["Hit", "HitKind", "Slot", "Traffic", "TrafficConfig", "seeded_ids"]

CATEGORY_NAMES = tuple(CATEGORIES)
PLACEMENT_NAMES = tuple(PLACEMENTS)
SEEN_BY_PLACEMENT = {"top": 0.95, "side": 0.7, "bottom": 0.45}
MEAN_SESSION_PAGES = 6.0
GAP_MEDIAN_S, GAP_SIGMA, MIN_GAP_S = 6.0, 0.8, 0.5
CRAWLER_RATE, BURST_BOT_RATE, BURST_LENGTH = 0.5, 2.0, 8
CONVERSION_RATE = 0.3
NEW_VISITOR_SHARE = 0.33
"""Sessions whose person is not recognised (no recency): the same share all along, so
the served features' distribution is stationary until a change is injected."""
PRICE_LOG_MEAN, PRICE_LOG_SIGMA = 3.0, 0.8
BOT_WAVE_STREAM = 23
"""Second word of the bot wave's own generator seed (``[seed, 23]``)."""


@dataclass
class _State:
    """What the generator remembers of an actor between its page views."""

    pages_left: int = 0
    session: str = ""
    url: str | None = None
    last_seen_s: float | None = None
    burst_left: int = 0


# (at_s, sequence, actor index, a scheduled duplicate or None): tuples, cheap to compare.
_Due = tuple[float, int, int, "Hit | None"]


class Traffic:
    """``until(t)`` → every hit due by simulated second ``t``, in time order."""

    def __init__(
        self,
        config: TrafficConfig,
        start_ms: int,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.config = config
        self.start_ms = start_ms
        self.new_id = new_id
        self.truth = Truth(config.change_at("concept_drift"))
        self.rng = np.random.default_rng(config.seed)
        rng = self.rng
        bot_rate = config.rate * config.bot_share
        crawlers = math.ceil(bot_rate / 2 / CRAWLER_RATE) if bot_rate > 0 else 0
        bursters = math.ceil(bot_rate / 2 / BURST_BOT_RATE) if bot_rate > 0 else 0
        self.actors = [make_human(rng, i) for i in range(config.users)]
        self.actors += [make_crawler(rng, i) for i in range(crawlers)]
        self.actors += [make_burst_bot(rng, i) for i in range(bursters)]
        crawler_rate = bot_rate / 2 / crawlers if crawlers else 0.0
        burst_rate = bot_rate / 2 / bursters if bursters else 0.0
        self._rates = [0.0] * config.users + [crawler_rate] * crawlers + [burst_rate] * bursters
        """Page views per second of each bot (by actor index; people: 0, unused)."""
        self._price_drift_at = config.change_at("feature_drift")
        self._field_dropped_at = config.change_at("field_dropped")
        # Size the people's pauses so that they make (1 - bot_share) of the rate.
        per_user = config.rate * (1 - config.bot_share) / config.users
        cycle_s = MEAN_SESSION_PAGES / per_user if per_user > 0 else math.inf
        in_session = (MEAN_SESSION_PAGES - 1) * GAP_MEDIAN_S * math.exp(GAP_SIGMA**2 / 2)
        self.gap_scale = min(1.0, 0.8 * cycle_s / in_session)
        self.pause_mean_s = cycle_s - in_session * self.gap_scale
        self.states = [_State() for _ in self.actors]
        # Who comes back as a new visitor, and when people were last seen at the start,
        # from a stream of their own (the hits' other draws stay as they were).
        self._visits = np.random.default_rng([config.seed, 11])
        self._due: list[_Due] = []
        self._seq = 0
        for index, actor in enumerate(self.actors):
            if actor.kind == "human":
                if per_user <= 0:
                    continue
                # Start in the steady state: some people are mid-session, the rest paused.
                # When they were last seen is what it is in the steady state too: a page
                # ago for those mid-session; for the others, as long ago as a pause
                # (exponential: the part already paused is one too), unless they come as
                # new visitors (see _page_view).
                if rng.random() < in_session * self.gap_scale / cycle_s:
                    self.states[index].pages_left = int(rng.integers(1, int(MEAN_SESSION_PAGES)))
                    self.states[index].session = self.new_id()
                    first = float(rng.uniform(0, 2 * GAP_MEDIAN_S * self.gap_scale))
                    ago = self._in_session_gap(self._visits)
                else:
                    first = float(rng.exponential(self.pause_mean_s))
                    ago = float(self._visits.exponential(max(self.pause_mean_s, MIN_GAP_S)))
                if actor.returning:
                    self.states[index].last_seen_s = -ago
            else:
                first = float(rng.exponential(1 / self._rates[index]))
            self._push(first, index)
        wave_at = config.change_at("bot_wave")
        if wave_at is not None:
            self._add_bot_wave(wave_at, crawlers, bursters)

    def _add_bot_wave(self, at_s: float, crawlers: int, bursters: int) -> None:
        """Bots enough for :data:`BOT_WAVE_SHARE` of the page views, first due at ``at_s``.

        Drawn from a generator of their own, after everyone else is scheduled, so nothing
        before ``at_s`` changes (from then on they share the traffic's generator)."""
        config = self.config
        human_rate = config.rate * (1 - config.bot_share)
        extra = human_rate * BOT_WAVE_SHARE / (1 - BOT_WAVE_SHARE) - config.rate * config.bot_share
        if extra <= 0:
            return
        rng = np.random.default_rng([config.seed, BOT_WAVE_STREAM])
        more_crawlers = math.ceil(extra / 2 / CRAWLER_RATE)
        more_bursters = math.ceil(extra / 2 / BURST_BOT_RATE)
        wave = [make_crawler(rng, crawlers + i) for i in range(more_crawlers)]
        wave += [make_burst_bot(rng, bursters + i) for i in range(more_bursters)]
        rates = [extra / 2 / more_crawlers] * more_crawlers
        rates += [extra / 2 / more_bursters] * more_bursters
        for actor, rate in zip(wave, rates, strict=True):
            index = len(self.actors)
            self.actors.append(actor)
            self.states.append(_State())
            self._rates.append(rate)
            self._push(at_s + float(rng.exponential(1 / rate)), index)

    def change_at(self, kind: ChangeKind) -> float | None:
        """The second change ``kind`` starts, or None (see :meth:`TrafficConfig.change_at`)."""
        return self.config.change_at(kind)

    def changed(self, kind: ChangeKind, at_s: float) -> bool:
        """Whether change ``kind`` is in effect at simulated second ``at_s``."""
        return self.config.changed(kind, at_s)

    def app_version_at(self, at_s: float) -> str:
        """The app version sent at ``at_s`` (see :meth:`TrafficConfig.app_version_at`)."""
        return self.config.app_version_at(at_s)

    def _push(self, at_s: float, index: int, hit: Hit | None = None) -> None:
        self._seq += 1
        heapq.heappush(self._due, (at_s, self._seq, index, hit))

    def until(self, t_s: float) -> list[Hit]:
        hits: list[Hit] = []
        while self._due and self._due[0][0] <= t_s:
            at_s, _, index, resent = heapq.heappop(self._due)
            if resent is not None:
                hits.append(resent)
                continue
            hits.append(self._page_view(at_s, index))
            self._push(self._next_after(at_s, index), index)
        return hits

    def _next_after(self, at_s: float, index: int) -> float:
        rng, actor, state = self.rng, self.actors[index], self.states[index]
        if actor.kind == "crawler":
            return at_s + float(rng.exponential(1 / self._rates[index]))
        if actor.kind == "burst_bot":
            if state.burst_left > 0:
                return at_s + float(rng.uniform(0.010, 0.030))
            return at_s + float(rng.exponential(BURST_LENGTH / self._rates[index]))
        if state.pages_left > 0:
            return at_s + self._in_session_gap(rng)
        return at_s + max(MIN_GAP_S, float(rng.exponential(max(self.pause_mean_s, MIN_GAP_S))))

    def _in_session_gap(self, rng: np.random.Generator) -> float:
        gap = float(rng.lognormal(math.log(GAP_MEDIAN_S), GAP_SIGMA)) * self.gap_scale
        return max(MIN_GAP_S, gap)

    def _page_view(self, at_s: float, index: int) -> Hit:
        rng, config = self.rng, self.config
        actor, state = self.actors[index], self.states[index]
        recency: float | None = None
        if actor.kind == "burst_bot":
            state.burst_left = state.burst_left - 1 if state.burst_left > 0 else BURST_LENGTH - 1
        if actor.kind == "human" and state.pages_left == 0:
            if self._visits.random() < NEW_VISITOR_SHARE:
                state.last_seen_s = None  # a new device, cleared cookies: not recognised
            state.pages_left = int(rng.geometric(1 / MEAN_SESSION_PAGES))
            state.session = self.new_id()
            state.url = None
        if actor.kind == "human":
            state.pages_left -= 1
            if state.last_seen_s is not None:
                recency = max(0.0, at_s - state.last_seen_s)
        category = (
            actor.favourite
            if rng.random() < 0.5
            else CATEGORY_NAMES[int(rng.integers(len(CATEGORY_NAMES)))]
        )
        url = (
            f"/c/{category}"
            if rng.random() < 0.4
            else f"/p/{category}/{int(rng.integers(100_000))}"
        )
        late = bool(rng.random() < config.late_share)
        client_ms = self.start_ms + int((at_s + actor.clock_skew_s) * 1000)
        if late:
            client_ms -= int(rng.uniform(20.0, 900.0) * 1000)
        # field_dropped: the new release sends another version and no session hint.
        dropped = self._field_dropped_at is not None and at_s >= self._field_dropped_at
        item: dict[str, Any] = {
            "event_id": self.new_id(),
            "event_type": "page_view",
            "user_id": actor.user_id,
            "client_ts": client_ms,
            "url": url,
            "user_agent": actor.user_agent,
            "app_version": config.app_version + FIELD_DROPPED_SUFFIX
            if dropped
            else config.app_version,
            "properties": {"category": category},
            "context": {"device": actor.device},
        }
        if state.session and not dropped:
            item["session_hint"] = state.session
        if state.url is not None:
            item["referrer"] = state.url
        state.url = url
        slots: tuple[Slot, ...] = ()
        if actor.kind == "human":
            state.last_seen_s = at_s
            if rng.random() < config.slot_share:
                slots = self._slots(at_s, actor, recency)
        if rng.random() < config.malformed_share:
            return Hit(at_s, "malformed", actor, self._corrupt(item), late)
        hit = Hit(at_s, "page_view", actor, item, late, slots)
        if rng.random() < config.duplicate_share:
            resend_at = at_s + float(rng.uniform(0.2, 5.0))
            self._push(resend_at, index, Hit(resend_at, "duplicate", actor, dict(item), late))
        return hit

    def _slots(self, at_s: float, actor: Actor, recency: float | None) -> tuple[Slot, ...]:
        rng = self.rng
        count = int(rng.integers(1, len(PLACEMENTS) + 1))
        placements = [PLACEMENT_NAMES[int(i)] for i in rng.permutation(len(PLACEMENTS))[:count]]
        hour = int((self.start_ms / 1000 + at_s) // 3600 + actor.tz_offset_h) % 24
        price_mean = PRICE_LOG_MEAN
        if self._price_drift_at is not None and at_s >= self._price_drift_at:
            price_mean += PRICE_SHIFT
        slots = []
        for placement in placements:
            category = (
                actor.favourite
                if rng.random() < 0.5
                else CATEGORY_NAMES[int(rng.integers(len(CATEGORY_NAMES)))]
            )
            features: dict[str, FeatureValue] = {
                "price": round(float(np.exp(rng.normal(price_mean, PRICE_LOG_SIGMA))), 2),
                "hour": hour,
                "is_mobile": actor.device == "mobile",
                "category": category,
                "recency_s": None if recency is None else round(recency, 1),
                "loyalty": actor.loyalty,
            }
            context = {"placement": placement, "device": actor.device}
            p = self.truth.p_click(features, context, at_s)
            seen = bool(rng.random() < SEEN_BY_PLACEMENT[placement])
            clicked = seen and bool(rng.random() < p)
            converted = clicked and bool(rng.random() < CONVERSION_RATE)
            value = float(rng.gamma(2.0, VALUE_MEANS[category] / 2.0)) if converted else 0.0
            impression = float(rng.uniform(0.2, 1.5))
            click = impression + min(30.0, float(rng.lognormal(math.log(3.0), 0.7)))
            slots.append(
                Slot(features, context, p, seen, clicked, converted, round(value, 2),
                     impression, click, click + float(rng.uniform(5.0, 20.0)))
            )  # fmt: skip
        return tuple(slots)

    def _corrupt(self, item: dict[str, Any]) -> dict[str, Any]:
        """An item the collector must refuse (400), in one of the ways clients get it wrong."""
        broken = dict(item)
        way = int(self.rng.integers(5))
        if way == 0:
            del broken["user_id"]
        elif way == 1:
            broken["event_id"] = "not-a-uuid"
        elif way == 2:
            broken["properties"] = {"category": item["properties"]["category"], "price": 12.5}
        elif way == 3:
            broken["client_ts"] = "yesterday at noon"
        else:
            broken["event_type"] = ""
        return broken
