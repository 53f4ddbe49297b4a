"""Crawler rules of ``analyse_user_agent``: each rule flags its examples and names itself;
real browsers (desktop, mobile, in-app, WebView) and native apps are never flagged."""

from __future__ import annotations

import time

import pytest

from streamlearn.agents.user_agents import analyse_user_agent, crawler_rule

pytestmark = pytest.mark.unit

# (user agent, streamlearn's rule that names it). Written by hand, from how each kind of
# client identifies itself: none of them is copied from a benchmark list. CrawlerDetect may
# know some of them too (then it is the one named in ``crawler``).
FLAGGED = [
    # AI crawlers and agents.
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2)", "ai_crawler"),
    ("ChatGPT-User/1.0", "ai_crawler"),
    ("OAI-SearchBot/1.0", "ai_crawler"),
    ("claude-searchbot/1.0", "ai_crawler"),
    ("Claude-User/1.0", "ai_crawler"),
    ("Perplexity-User/1.0", "ai_crawler"),
    ("meta-externalagent/1.1", "ai_crawler"),
    ("MistralAI-User/1.0", "ai_crawler"),
    ("cohere-training-data-crawler", "ai_crawler"),
    # Browser automation and page-speed tools.
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36 Playwright/1.49",
        "automation",
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36 Selenium",
        "automation",
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/118.0.0.0 Safari/537.36 Puppeteer",
        "automation",
    ),
    (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1",
        "automation",
    ),
    (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like "
        "Gecko) Chrome/129.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "automation",
    ),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 PTST/240101.120000", "automation"),
    # HTTP client libraries and command-line tools.
    ("Faraday v2.7.10", "http_client"),
    ("RestSharp/110.2.0.0", "http_client"),
    ("reqwest/0.11", "http_client"),
    ("Ktor client", "http_client"),
    ("WinHttp.WinHttpRequest.5", "http_client"),
    ("Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1", "http_client"),
    ("PostmanRuntime/7.36.0", "http_client"),
    ("GuzzleHttp/7", "http_client"),
    # A URL or an e-mail address: a contact for an operator, never in a browser's.
    ("ExampleSurvey/2.0 (+https://example.org/about)", "contact"),
    ("Acme Link Survey 1.0 (ops@example.net)", "contact"),
    ("WidgetCorp data team, see www.widgetcorp.com", "contact"),
    # Crawler words.
    ("Mozilla/5.0 (compatible; ZumBot/1.3)", "keyword"),
    ("SiteCrawler 4.1", "keyword"),
    ("Mozilla/5.0 (compatible; Sogou-web-spider/4.0)", "keyword"),
    ("LinkScanner/1.0", "keyword"),
    ("FeedFetcher-Acme", "keyword"),
    ("Acme Link Preview", "keyword"),
    ("UptimeMonitor/2.0", "keyword"),
    ("Mozilla/5.0 (compatible; W3C-checklink/4.81)", "keyword"),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36 Scraper",
        "keyword",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36 AcmeAgent",
        "keyword",
    ),
    ("AcmeSynthetics/1.0 (Windows NT 10.0)", "keyword"),
    (
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0 acme.example.fr",
        "contact",
    ),
    ("Acme/1.0 (Android 14; contact: ops team)", "keyword"),
    ("Acme-User/1.0", "ai_crawler"),
    # Browser-shaped strings no browser sends.
    ("Mozilla/5.0", "not_browser"),
    ("Mozilla/5.0 (compatible; Zoominfo/1.0)", "browser_lookalike"),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko; "
        "compatible; Acme/1.0) Chrome/124.0.0.0 Safari/537.36",
        "browser_lookalike",
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko, AcmeRender) "
        "Chrome/120.0.0.0 Safari/537.36",
        "browser_lookalike",
    ),
    ("Mozilla/5.0 (Windows NT 10.0; rv:xx) Gecko/20100101 Firefox/version", "browser_lookalike"),
    ("Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", "obsolete_browser"),
    ("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", "obsolete_browser"),
    # And strings that are not browsers' at all.
    ("shop-backend/2.3", "not_browser"),
    ("-", "not_browser"),
    ("Acme Pipeline", "not_browser"),
]

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
BROWSERS = {
    "chrome-windows": CHROME_WIN,
    "chrome-mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "chrome-linux": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36",
    "chromeos": "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "chrome-android": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "chrome-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
    "edge": CHROME_WIN + " Edg/131.0.0.0",
    "edge-android": "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36 EdgA/130.0.0.0",
    "opera": CHROME_WIN.replace("131", "130") + " OPR/115.0.0.0",
    "opera-mini": "Opera/9.80 (Android; Opera Mini/36.2.2254/191.256; U; en) Presto/2.12.423 "
    "Version/12.16",
    "firefox-windows": "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 "
    "Firefox/133.0",
    "firefox-linux": "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:132.0) Gecko/20100101 "
    "Firefox/132.0",
    "firefox-android": "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
    "firefox-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) FxiOS/132.0 Mobile/15E148 Safari/605.1.15",
    "safari-mac": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/18.1 Safari/605.1.15",
    "safari-iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "safari-ipad": "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
    "samsung-internet": "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
    "(KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
    "yandex": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/128.0.0.0 YaBrowser/24.10.0.0 Safari/537.36",
    "yandex-android": "Mozilla/5.0 (Linux; arm_64; Android 13; SM-A525F) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/126.0.6478.229 YaBrowser/24.7.6.229.00 SA/3 Mobile "
    "Safari/537.36",
    "duckduckgo-android": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/124.0.0.0 Mobile DuckDuckGo/5 Safari/537.36",
    "uc-browser": "Mozilla/5.0 (Linux; U; Android 11; en-US; RMX2193 Build/RP1A.200720.011) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 "
    "Mobile Safari/537.36",
    "cubot-phone": "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like "
    "Gecko) Chrome/120.0.6099.43 Mobile Safari/537.36",
    "ie11": "Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E; rv:11.0) like "
    "Gecko",
    "ie10-windows-phone": "Mozilla/5.0 (compatible; MSIE 10.0; Windows Phone 8.0; Trident/6.0; "
    "IEMobile/10.0; ARM; Touch; NOKIA; Lumia 920)",
    "facebook-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.41.108;FBBV/629431430;"
    "FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/17.5;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
    "facebook-android": "Mozilla/5.0 (Linux; Android 13; SM-A536B Build/TP1A.220624.014; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/126.0.6478.122 Mobile "
    "Safari/537.36 [FB_IAB/FB4A;FBAV/473.0.0.54.109;]",
    "instagram-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5_1 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 337.0.3.23.54 "
    "(iPhone14,5; iOS 17_5_1; en_US; en; scale=3.00; 1170x2532; 614397364)",
    "instagram-android": "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240805.005; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/127.0.6533.103 Mobile "
    "Safari/537.36 Instagram 343.0.0.33.101 Android (34/14; 420dpi; 1080x2205; Google/google; "
    "Pixel 8; shiba; shiba; en_US; 628341011)",
    "tiktok-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 musical_ly_34.1.0 JsSdk/2.0 NetType/WIFI Channel/App "
    "Store ByteLocale/en Region/US ByteFullLocale/en isDarkMode/0 WKWebView/1 "
    "BytedanceWebview/d8a21c6",
    "linkedin-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [LinkedInApp]/9.30.1360",
    "pinterest-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
    "wechat": "Mozilla/5.0 (Linux; Android 12; V2118A Build/SP1A.210812.003; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile "
    "Safari/537.36 XWEB/5023 MMWEBSDK/20230405 MMWEBID/2585 MicroMessenger/8.0.35.2360(0x2800235B) "
    "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
    "google-app-ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) GSA/333.0.689011254 Mobile/15E148 Safari/604.1",
    "android-webview": "Mozilla/5.0 (Linux; Android 12; Pixel 6 Build/SQ3A.220705.004; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/103.0.5060.71 Mobile "
    "Safari/537.36",
    "ios-wkwebview": "Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148",
    "electron-app": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
    "Gecko) ShopDesktop/1.2.0 Chrome/130.0.6723.118 Electron/33.2.0 Safari/537.36",
    "samsung-tv": "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.5) AppleWebKit/537.36 (KHTML, like Gecko) "
    "85.0.4183.93/6.5 TV Safari/537.36",
    "lg-webos": "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
    "playstation": "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/13.0 Safari/605.1.15",
    "konqueror": "Mozilla/5.0 (compatible; Konqueror/4.5; Linux) KHTML/4.5.5 (like Gecko)",
}

# Native apps' own HTTP stacks: people using an app, not crawlers (see the module docstring).
NATIVE_APPS = {
    "ios-cfnetwork": "ShopApp/4.2.1 CFNetwork/1494.0.7 Darwin/23.4.0",
    "ios-alamofire": "ShopApp/4.2.1 (com.example.shop; build:512; iOS 17.5.0) Alamofire/5.8.0",
    "ios-afnetworking": "ShopApp/4.2 (iPhone; iOS 17.5; Scale/3.00)",
    "android-dalvik": "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)",
    "android-app": "ShopApp/4.2.1 (Android 14; SM-S918B)",
    "windows-app": "ShopApp/4.2.1 (Windows NT 10.0; Win64; x64)",
}


@pytest.mark.parametrize(("user_agent", "rule"), FLAGGED, ids=[ua[:48] for ua, _ in FLAGGED])
def test_crawler_rules_flag_and_name_the_rule(user_agent: str, rule: str) -> None:
    reason = crawler_rule(user_agent)
    assert reason is not None, user_agent
    name, _, what = reason.partition(":")
    assert name == rule, reason
    assert what, f"the rule should say what it matched: {reason}"
    info = analyse_user_agent(user_agent)
    assert info.crawler is not None
    assert info.device_class == "bot"


@pytest.mark.parametrize("user_agent", list(BROWSERS.values()), ids=list(BROWSERS))
def test_real_browsers_are_not_flagged(user_agent: str) -> None:
    assert crawler_rule(user_agent) is None
    assert analyse_user_agent(user_agent).crawler is None


@pytest.mark.parametrize("user_agent", list(NATIVE_APPS.values()), ids=list(NATIVE_APPS))
def test_native_app_stacks_are_not_flagged(user_agent: str) -> None:
    assert crawler_rule(user_agent) is None
    assert analyse_user_agent(user_agent).crawler is None


def test_crawlerdetect_comes_first_and_is_named() -> None:
    info = analyse_user_agent(
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
    )
    assert info.crawler is not None
    assert info.crawler.lower() == "crawlerdetect:bingbot"


def test_keyword_names_the_product() -> None:
    assert crawler_rule("Mozilla/5.0 (compatible; ZumBot/1.3)") == "keyword:ZumBot"
    assert crawler_rule("Acme Link Preview") == "keyword:Preview"


def test_obsolete_browser_names_the_version() -> None:
    assert (
        crawler_rule("Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)")
        == "obsolete_browser:MSIE 6.0"
    )


def test_contact_names_the_address() -> None:
    assert crawler_rule("Acme/2.0 (+https://example.org/about)") == (
        "contact:+https://example.org/about"
    )
    assert crawler_rule("Acme Survey 1.0 (ops@example.net)") == "contact:ops@example.net"


def test_not_browser_names_the_product() -> None:
    assert analyse_user_agent("shop-backend/2.3").crawler == "not_browser:shop-backend"


def test_own_rule_fires_when_crawlerdetect_does_not() -> None:
    assert analyse_user_agent("Perplexity-User/1.0").crawler == "ai_crawler:Perplexity-User"


def test_oversized_strings_are_flagged_without_crawlerdetect() -> None:
    # CrawlerDetect takes seconds on these; they are flagged before it is asked.
    started = time.perf_counter()
    assert analyse_user_agent("a" * 8192).crawler == "oversized:8192 characters"
    long_word = CHROME_WIN + " " + "a" * 200
    assert analyse_user_agent(long_word).crawler == "oversized:a word of 100+ characters"
    assert time.perf_counter() - started < 1.0


def test_reasons_quote_at_most_80_characters_of_the_user_agent() -> None:
    reason = crawler_rule("x" * 90 + " " + "b" * 90 + "bot")
    assert reason is not None
    assert reason.startswith("keyword:")
    assert len(reason) <= len("keyword:") + 80


def test_missing_user_agent_is_not_a_crawler() -> None:
    assert crawler_rule("") is None
    assert analyse_user_agent(None).crawler is None
    assert analyse_user_agent("").crawler is None


def test_browser_parsing_is_kept() -> None:
    info = analyse_user_agent(BROWSERS["samsung-internet"])
    assert info.browser_family == "Samsung Internet"
    assert info.device_class == "mobile"
