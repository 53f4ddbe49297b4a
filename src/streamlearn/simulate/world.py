"""The simulated population: people with latent traits, crawlers and behavioural bots.

Every actor gets a device, a user agent that fits it, an IP address, a clock skew (clients'
clocks are not the server's) and, for people, latent preferences: a favourite category, a
loyalty tier, a time zone (so the local hour varies even in a short run) and whether they
visited before (``recency_s`` known) or are new. Everything comes from one seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from streamlearn.models.synthetic import CATEGORIES

ActorKind = Literal["human", "crawler", "burst_bot"]

HUMAN_AGENTS: dict[str, tuple[str, ...]] = {
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/130.0.0.0 Mobile Safari/537.36",
    ),
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
}
CRAWLER_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
)
DEVICE_SHARES = {"mobile": 0.55, "desktop": 0.35, "tablet": 0.10}
LOYALTY_SHARES = {"none": 0.6, "silver": 0.3, "gold": 0.1}


@dataclass(frozen=True)
class Actor:
    """Someone (or something) that loads pages."""

    user_id: str
    kind: ActorKind
    device: str
    user_agent: str
    ip: str
    clock_skew_s: float
    favourite: str = "books"
    loyalty: str = "none"
    tz_offset_h: int = 0
    returning: bool = False


def _ip(rng: np.random.Generator, first: int) -> str:
    a, b, c = (int(x) for x in rng.integers(1, 255, size=3))
    return f"{first}.{a}.{b}.{c}"


def _pick(rng: np.random.Generator, shares: dict[str, float]) -> str:
    return str(rng.choice(list(shares), p=list(shares.values())))


def make_human(rng: np.random.Generator, index: int) -> Actor:
    device = _pick(rng, DEVICE_SHARES)
    agents = HUMAN_AGENTS[device]
    return Actor(
        user_id=f"u-{index}",
        kind="human",
        device=device,
        user_agent=agents[int(rng.integers(len(agents)))],
        ip=_ip(rng, int(rng.choice([81, 82, 93, 176]))),
        clock_skew_s=float(rng.normal(0.0, 1.0)),
        favourite=str(rng.choice(list(CATEGORIES))),
        loyalty=_pick(rng, LOYALTY_SHARES),
        tz_offset_h=int(rng.integers(-8, 10)),
        returning=bool(rng.random() < 0.67),
    )


def make_crawler(rng: np.random.Generator, index: int) -> Actor:
    return Actor(
        user_id=f"crawler-{index}",
        kind="crawler",
        device="bot",
        user_agent=CRAWLER_AGENTS[index % len(CRAWLER_AGENTS)],
        ip=_ip(rng, 66),
        clock_skew_s=0.0,
    )


def make_burst_bot(rng: np.random.Generator, index: int) -> Actor:
    """A scraper disguised as a desktop browser: only its timing gives it away."""
    agents = HUMAN_AGENTS["desktop"]
    return Actor(
        user_id=f"b-{index}",
        kind="burst_bot",
        device="desktop",
        user_agent=agents[int(rng.integers(len(agents)))],
        ip=_ip(rng, 45),
        clock_skew_s=float(rng.normal(0.0, 1.0)),
    )
