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
"""

from __future__ import annotations

import heapq
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from streamlearn.models.features import FeatureValue
from streamlearn.models.synthetic import CATEGORIES, PLACEMENTS, VALUE_MEANS
from streamlearn.simulate.truth import Truth
from streamlearn.simulate.world import Actor, make_burst_bot, make_crawler, make_human

HitKind = Literal["page_view", "duplicate", "malformed"]
CATEGORY_NAMES = tuple(CATEGORIES)
PLACEMENT_NAMES = tuple(PLACEMENTS)
SEEN_BY_PLACEMENT = {"top": 0.95, "side": 0.7, "bottom": 0.45}
MEAN_SESSION_PAGES = 6.0
GAP_MEDIAN_S, GAP_SIGMA, MIN_GAP_S = 6.0, 0.8, 0.5
CRAWLER_RATE, BURST_BOT_RATE, BURST_LENGTH = 0.5, 2.0, 8
CONVERSION_RATE = 0.3


@dataclass(frozen=True)
class TrafficConfig:
    rate: float = 50.0
    users: int = 1000
    bot_share: float = 0.05
    duplicate_share: float = 0.02
    late_share: float = 0.03
    malformed_share: float = 0.01
    slot_share: float = 0.6
    drift_at_s: float | None = None
    seed: int = 0
    app_version: str = "simulator"

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.users < 1:
            raise ValueError("rate must be positive and users at least 1")
        for name in ("bot_share", "duplicate_share", "late_share", "malformed_share", "slot_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


@dataclass(frozen=True)
class Slot:
    """One recommended item on a page, with its true probability and outcome."""

    features: dict[str, FeatureValue]
    context: dict[str, str]
    p_click: float
    seen: bool
    clicked: bool
    converted: bool
    value: float
    impression_after_s: float
    click_after_s: float
    conversion_after_s: float


@dataclass(frozen=True)
class Hit:
    """One JSON item for the collector (sent from ``ip``), and the slots of its page."""

    at_s: float
    kind: HitKind
    actor: Actor
    item: dict[str, Any]
    late: bool = False
    slots: tuple[Slot, ...] = ()


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


def seeded_ids(seed: int) -> Callable[[], str]:
    """A deterministic UUID generator (for tests); the simulator uses :func:`uuid.uuid4`."""
    rng = np.random.default_rng([seed, 7])

    def new_id() -> str:
        return str(uuid.UUID(bytes=rng.bytes(16), version=4))

    return new_id


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
        self.truth = Truth(config.drift_at_s)
        self.rng = np.random.default_rng(config.seed)
        rng = self.rng
        bot_rate = config.rate * config.bot_share
        crawlers = math.ceil(bot_rate / 2 / CRAWLER_RATE) if bot_rate > 0 else 0
        bursters = math.ceil(bot_rate / 2 / BURST_BOT_RATE) if bot_rate > 0 else 0
        self.actors = [make_human(rng, i) for i in range(config.users)]
        self.actors += [make_crawler(rng, i) for i in range(crawlers)]
        self.actors += [make_burst_bot(rng, i) for i in range(bursters)]
        self._crawler_rate = bot_rate / 2 / crawlers if crawlers else 0.0
        self._burst_rate = bot_rate / 2 / bursters if bursters else 0.0
        # Size the people's pauses so that they make (1 - bot_share) of the rate.
        per_user = config.rate * (1 - config.bot_share) / config.users
        cycle_s = MEAN_SESSION_PAGES / per_user if per_user > 0 else math.inf
        in_session = (MEAN_SESSION_PAGES - 1) * GAP_MEDIAN_S * math.exp(GAP_SIGMA**2 / 2)
        self.gap_scale = min(1.0, 0.8 * cycle_s / in_session)
        self.pause_mean_s = cycle_s - in_session * self.gap_scale
        self.states = [_State() for _ in self.actors]
        self._due: list[_Due] = []
        self._seq = 0
        for index, actor in enumerate(self.actors):
            if actor.kind == "human":
                if per_user <= 0:
                    continue
                # Start in the steady state: some people are mid-session, the rest paused.
                if rng.random() < in_session * self.gap_scale / cycle_s:
                    self.states[index].pages_left = int(rng.integers(1, int(MEAN_SESSION_PAGES)))
                    self.states[index].session = self.new_id()
                    first = float(rng.uniform(0, 2 * GAP_MEDIAN_S * self.gap_scale))
                else:
                    first = float(rng.exponential(self.pause_mean_s))
                if actor.returning:
                    self.states[index].last_seen_s = -float(rng.exponential(900.0))
            else:
                first = float(rng.exponential(1 / self._rate_of(actor)))
            self._push(first, index)

    def _rate_of(self, actor: Actor) -> float:
        return self._crawler_rate if actor.kind == "crawler" else self._burst_rate

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
            return at_s + float(rng.exponential(1 / self._crawler_rate))
        if actor.kind == "burst_bot":
            if state.burst_left > 0:
                return at_s + float(rng.uniform(0.010, 0.030))
            return at_s + float(rng.exponential(BURST_LENGTH / self._burst_rate))
        if state.pages_left > 0:
            gap = float(rng.lognormal(math.log(GAP_MEDIAN_S), GAP_SIGMA)) * self.gap_scale
            return at_s + max(MIN_GAP_S, gap)
        return at_s + max(MIN_GAP_S, float(rng.exponential(max(self.pause_mean_s, MIN_GAP_S))))

    def _page_view(self, at_s: float, index: int) -> Hit:
        rng, config = self.rng, self.config
        actor, state = self.actors[index], self.states[index]
        recency: float | None = None
        if actor.kind == "burst_bot":
            state.burst_left = state.burst_left - 1 if state.burst_left > 0 else BURST_LENGTH - 1
        if actor.kind == "human" and state.pages_left == 0:
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
        item: dict[str, Any] = {
            "event_id": self.new_id(),
            "event_type": "page_view",
            "user_id": actor.user_id,
            "client_ts": client_ms,
            "url": url,
            "user_agent": actor.user_agent,
            "app_version": config.app_version,
            "properties": {"category": category},
            "context": {"device": actor.device},
        }
        if state.session:
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
        slots = []
        for placement in placements:
            category = (
                actor.favourite
                if rng.random() < 0.5
                else CATEGORY_NAMES[int(rng.integers(len(CATEGORY_NAMES)))]
            )
            features: dict[str, FeatureValue] = {
                "price": round(float(np.exp(rng.normal(3.0, 0.8))), 2),
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
