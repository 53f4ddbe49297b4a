"""What a User-Agent string says: crawler or not, browser, OS and device class.

Crawler detection asks the CrawlerDetect database (crawlerdetect) first, then streamlearn's
own rules, general signs that no person's browser sends (:func:`crawler_rule`). The rule
that fired is kept in :attr:`UserAgentInfo.crawler` as ``"rule:what matched"``, e.g.
``crawlerdetect:Googlebot``, ``keyword:ZumBot``, ``not_browser:shop-backend``:

- ``ai_crawler``: AI crawlers and agents fetching for a model or an assistant (GPTBot,
  ChatGPT-User, ClaudeBot, PerplexityBot, meta-externalagent, CCBot, Bytespider, ...).
- ``automation``: browser automation and page-speed tools (HeadlessChrome, Playwright,
  Puppeteer, Selenium/WebDriver, PhantomJS, Lighthouse, WebPageTest, ...).
- ``http_client``: HTTP client libraries and command-line tools (python-requests, curl,
  wget, Go-http-client, Java, okhttp, axios, node-fetch, libwww-perl, PowerShell, ...).
- ``contact``: a URL (``+http://...``, ``www.``, a domain name) or an e-mail address, the
  way operators of crawlers say who they are; no browser puts one in its user agent.
- ``keyword``: crawler words: bot, crawl, spider, scrape, scan, fetch, preview, monitor,
  synthetic, check, validate, verify, inspect, audit, archive, index, feed, screenshot,
  thumbnail, ...agent, contact, ...
- ``obsolete_browser``: browsers nobody has used for twenty years (MSIE 6 and older,
  Windows 95/98/ME/NT 4), a disguise of scripts.
- ``oversized``: longer than :data:`MAX_LENGTH` characters (browsers' are a few hundred),
  or a run of :data:`MAX_RUN` letters/digits (browsers' are a few dozen); checked first,
  before CrawlerDetect, one of whose patterns takes seconds on such a string.

Two shapes of the whole string are tried only when none of those signs is found:

- ``browser_lookalike``: looks like a browser's but breaks what every browser writes:
  ``(compatible; X`` naming no browser (only MSIE and Konqueror write that), anything added
  inside WebKit's fixed ``(KHTML, like Gecko)``, a browser token whose version is a word
  (``Firefox/version``, a template never filled in).
- ``not_browser``: ``Mozilla/...`` or ``Opera/...`` without a rendering engine
  (``Mozilla/5.0``), and anything that neither starts like a browser nor names a device
  platform (iPhone, iOS, Android, Darwin/CFNetwork, Dalvik, Windows, Macintosh, ...).

Not caught, by design: a crawler that copies a real browser's user agent verbatim, or adds
only an unknown product name to one (``... Safari/537.36 Acme``). In-app browsers
(Facebook, Instagram, WeChat, TikTok, ...) and Electron apps append such names too, and are
people; the behavioural rules (``agents/bots.py``) are what catches such crawlers.

What happens to user agents that are not a browser's (decided here, documented in
docs/agents.md): a *native app* is a person too. An app's own HTTP stack names a device
platform (``MyApp/4.2 CFNetwork/1494 Darwin/23.4``, ``Dalvik/2.1.0 (Linux; U; Android
13; ...)``, ``MyApp/4.2 (iPhone; iOS 17.5; Scale/3.00)``), and such a string passes unless
another rule fires. A *server-side* sender is not: HTTP libraries (CrawlerDetect already
flagged python-requests, curl, Go-http-client, Java, okhttp, Dart, axios, ...) and bare
product names (``shop-backend/2.3``) are flagged, because scripts look exactly like that.
A server that sends events on behalf of people must put the person's user agent in each
event's ``user_agent`` field (the collector prefers it to the request's header); events
without any user agent are never flagged by these rules.

Parsing uses the uap-core rules (ua-parser). Both are cached per distinct string: real
traffic repeats a few thousand user agents, so the cost is paid once per agent, not per
event. The own rules are one precompiled regular expression.
"""

from __future__ import annotations

import re
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

# Browsers' user agents are a few hundred characters at most (in-app browsers' the longest),
# their longest run of letters, digits, "-" and "_" a few dozen. Longer ones are flagged
# unread: one of CrawlerDetect's patterns takes time quadratic in such a run (16 s for one
# run of 8,192 letters).
MAX_LENGTH = 1024
MAX_RUN = 100
_LONG_RUN = re.compile(rf"[a-z0-9_-]{{{MAX_RUN}}}", re.IGNORECASE)
# What a reason quotes of the user agent, at most.
_NAME_LENGTH = 80

# Signs found anywhere in the string; the leftmost one names the rule. Each group's name
# is the rule's.
_SIGNS = {
    "ai_crawler": (
        r"gptbot|chatgpt|oai-searchbot|openai|claude(?:bot|-web|-user|-searchbot)|anthropic"
        r"|perplexity|google-extended|googleother|google-cloudvertexbot|ccbot|bytespider"
        r"|amazonbot|applebot|cohere|diffbot|youbot|meta-external(?:agent|fetcher)"
        r"|facebookbot|imagesiftbot|timpibot|omgili|mistralai|duckassist|ai2bot|pangubot"
        r"|webzio|firecrawl|crawl4ai|novaact|deepseek|grok|\bai[-_ ]?agent"
        # Fetchers acting for one person's request: ChatGPT-User, Perplexity-User, ...
        r"|\b[a-z]\w*-user/"
    ),
    "automation": (
        r"headless|phantomjs|puppeteer|playwright|selenium|webdriver|lighthouse|\bptst\b"
        r"|gtmetrix|pagespeed|cypress|nightmare|slimerjs|htmlunit|jsdom|prerender|casperjs"
        r"|zombie\.js|wkhtmlto|inspectiontool|electron-fetch"
    ),
    "http_client": (
        r"python|\bjava\b|jakarta|\bperl\b|libwww|\blwp\b|\bruby\b|\bphp|golang|go-http"
        r"|\bgo/\d|node(?:\.js|js|-fetch|/)|undici|axios|superagent|\bgot\b|okhttp|retrofit"
        r"|ktor|\bdart/|curl|wget|aiohttp|httpx|urllib|requests|reqwest|hyper/|faraday"
        r"|restsharp|guzzle|httpclient|http[-_ ]?client|web[-_ ]?client|winhttp|wininet"
        r"|powershell|postman|insomnia|httpie|\blib[a-z]|\bscrapy|mechanize|\bhttp[-_./]"
        r"|\.net/"
    ),
    "contact": (
        r"https?://|\+https?|\bwww\.|(?<![\w.+-])[\w.+-]+@[\w-]+\.[a-z]{2,}"
        r"|\((?:at|dot)\)|\[(?:at|dot)\]"
        # A domain name (not an app's reverse-domain bundle id, com.example.app).
        r"|(?<![\w.@/-])(?!(?:com|org|net|edu|gov)\.)[a-z][\w-]*(?:\.[a-z][\w-]*)*"
        r"\.(?:com|net|org|edu|gov|io|ai|info|biz|[a-z]{2})(?![\w.-])"
    ),
    "keyword": (
        r"(?<!cu)bot|crawl|spider|scrap[ei]|scan|fetch|preview|monitor|uptime|synthetic"
        r"|check(?:er|ing|link|_)|validat|verif|inspect|audit|diagnos|measur|archiv"
        r"|index(?:er|ing)|harvest|slurp|feed|\brss|\bping|probe|extractor|download"
        r"|analy[sz]|sitemap|thumbnail|screenshot|\bspy\b|\bsearch[-_ ]?engine|\brobot"
        r"|agent\b|contact|\btest[-_ ]?(?:agent|client|bot)"
    ),
    "obsolete_browser": (r"msie [1-6]\.|windows (?:95|98|me|ce|nt [1-4]\.)|\bwin(?:95|98|9x)\b"),
}
# Whole-string shapes, tried when no sign is found.
_ENGINE = r"applewebkit|gecko|trident|presto|khtml|msie|edge/|goanna"
_PLATFORM = (
    r"iphone|ipad|ipod|\bios\b|ipados|android|darwin|cfnetwork|dalvik|windows|macintosh"
    r"|mac ?os|\bcros\b|tizen|webos|web0s|kaios|harmonyos|playstation|xbox|nintendo|watchos"
    r"|tvos|smart-?tv|roku"
)
_SHAPES = {
    # Looks like a browser's but breaks what every browser writes: "(compatible; X" naming
    # no browser (only MSIE and Konqueror write it), anything added inside WebKit's fixed
    # "(KHTML, like Gecko)", a browser token whose version is a word ("Firefox/version").
    "browser_lookalike": (
        r".*?(?:[(;]\s*compatible;\s*(?P<product>(?!\s|msie|konqueror)[^\s;()]+)"
        r"|\(khtml, like gecko(?P<inside>[^)]+)\)"
        r"|\b(?:chrome|firefox|safari|gecko|applewebkit|version)/(?P<placeholder>[a-z]\w*))"
    ),
    "not_browser": (
        # Mozilla/... or Opera/... with no rendering engine ("Mozilla/5.0"),
        rf"(?:mozilla|opera)/(?!.*(?:{_ENGINE}))"
        # and anything else that neither starts like a browser nor names a device platform.
        rf"|(?!(?:mozilla|opera)/)(?!.*(?:{_PLATFORM}))"
    ),
}
_RULES = re.compile(
    r"^(?:.*?(?:"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern in _SIGNS.items())
    + r")|"
    + "|".join(f"(?P<{name}>{pattern})" for name, pattern in _SHAPES.items())
    + ")",
    re.IGNORECASE | re.DOTALL,
)
# The characters of a word (a product's name), of a URL or e-mail address: before, after.
_WORD = (re.compile(r"[\w.-]*$"), re.compile(r"[\w.-]*"))
_URL = (re.compile(r"[^\s;()\[\],]*$"), re.compile(r"[^\s;()\[\],]*"))
_PRODUCT = re.compile(r"[^\s/;()\[\],]+")


def _what(user_agent: str, found: re.Match[str], rule: str) -> str:
    """What matched, widened to its whole word (or URL), so the reason names the product."""
    if found.group("product"):
        return found.group("product")
    if found.group("placeholder"):
        return user_agent[: found.end("placeholder")].split()[-1]
    if found.group("inside"):
        names = [w for w in _PRODUCT.findall(found.group("inside")) if w.lower() != "compatible"]
        return names[0] if names else found.group("inside").strip(" ,;")
    start, end = found.span(rule)
    if rule == "not_browser":
        product = _PRODUCT.search(user_agent)
        return product.group(0) if product else user_agent.strip()
    words = _URL if rule == "contact" else _WORD
    head = words[0].search(user_agent, max(0, start - _NAME_LENGTH), start)
    tail = words[1].match(user_agent, end, end + _NAME_LENGTH)
    word = user_agent[head.start() if head else start : tail.end() if tail else end]
    return word.strip(".-") or user_agent[start:end]


def _oversized(user_agent: str) -> str | None:
    if len(user_agent) > MAX_LENGTH:
        return f"oversized:{len(user_agent)} characters"
    if _LONG_RUN.search(user_agent):
        return f"oversized:a word of {MAX_RUN}+ characters"
    return None


@lru_cache(maxsize=20_000)
def crawler_rule(user_agent: str) -> str | None:
    """streamlearn's own rules (not CrawlerDetect's): ``"rule:what matched"`` or None."""
    if not user_agent.strip():
        return None
    oversized = _oversized(user_agent)
    if oversized:
        return oversized
    found = _RULES.match(user_agent)
    if found is None or found.lastgroup is None:
        return None
    rule = found.lastgroup
    return f"{rule}:{_what(user_agent, found, rule)[:_NAME_LENGTH]}"


@lru_cache(maxsize=20_000)
def crawler_of(user_agent: str | None) -> str | None:
    """The crawler rule a user agent fires (CrawlerDetect's, then streamlearn's own), or
    None for a person's browser, an app, or no user agent at all."""
    if not user_agent:
        return None
    crawler = _oversized(user_agent)
    if crawler is None and _detector.isCrawler(user_agent):
        crawler = f"crawlerdetect:{_detector.getMatches()}"[: len("crawlerdetect:") + _NAME_LENGTH]
    elif crawler is None:
        crawler = crawler_rule(user_agent)
    return crawler


SERVER_RULES = frozenset({"http_client", "not_browser"})
"""Rules that fire for a server's own HTTP stack as much as for a script's."""


@lru_cache(maxsize=20_000)
def rendering_crawler(user_agent: str | None) -> str | None:
    """The crawler rule a browser-like user agent (``Mozilla/...``) fires: a crawler that
    renders pages and runs their scripts (Googlebot's renderer, GPTBot, a headless
    browser), or None. Servers forwarding feedback for people send their own HTTP stack's
    user agent (``python-requests``, ``feedback-relay/1.0 (+https://...)``), which is
    never browser-like, so those are never one (label-join's use)."""
    if not user_agent or not user_agent.startswith("Mozilla/"):
        return None
    rule = crawler_of(user_agent)
    if rule is None or rule.split(":", 1)[0] in SERVER_RULES:
        return None
    return rule


@lru_cache(maxsize=20_000)
def analyse_user_agent(user_agent: str | None) -> UserAgentInfo:
    """Crawler rule that fired (None for humans) and the parsed browser, OS and device class."""
    if not user_agent:
        return UserAgentInfo(None, None, None, None, "other")
    crawler = crawler_of(user_agent)
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
        crawler=crawler,
        browser_family=None if browser == "Other" else browser,
        browser_version=parsed.user_agent.major,
        os_family=None if os_family == "Other" else os_family,
        device_class=device_class,
    )
