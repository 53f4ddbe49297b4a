"""What a User-Agent string says: crawler or not, browser, OS and device class.

Crawler detection uses the CrawlerDetect database (crawlerdetect), parsing uses the
uap-core rules (ua-parser). Both are cached per distinct string: real traffic repeats a
few thousand user agents, so the parse cost is paid once per agent, not per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import ua_parser
from crawlerdetect import CrawlerDetect

_MOBILE_OS = frozenset({"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"})
_TABLET_WORDS = ("iPad", "Tablet", "Kindle", "Nexus 7", "Nexus 9", "SM-T")
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora", "FreeBSD"}
)


@dataclass(frozen=True)
class UserAgentInfo:
    crawler: str | None
    browser_family: str | None
    browser_version: str | None
    os_family: str | None
    device_class: str


_detector = CrawlerDetect()


@lru_cache(maxsize=20_000)
def analyse_user_agent(user_agent: str | None) -> UserAgentInfo:
    """Crawler name (None for humans) and the parsed browser, OS and device class."""
    if not user_agent:
        return UserAgentInfo(None, None, None, None, "other")
    crawler = _detector.getMatches() if _detector.isCrawler(user_agent) else None
    parsed = ua_parser.parse(user_agent).with_defaults()
    browser = parsed.user_agent.family
    os_family = parsed.os.family
    device = parsed.device.family
    if crawler or device == "Spider":
        device_class = "bot"
    elif device == "iPad" or any(word in user_agent for word in _TABLET_WORDS):
        device_class = "tablet"
    elif os_family in _MOBILE_OS or "Mobile" in user_agent:
        device_class = "mobile"
    elif os_family in _DESKTOP_OS:
        device_class = "desktop"
    else:
        device_class = "other"
    return UserAgentInfo(
        crawler=str(crawler) if crawler else None,
        browser_family=None if browser == "Other" else browser,
        browser_version=parsed.user_agent.major,
        os_family=None if os_family == "Other" else os_family,
        device_class=device_class,
    )
