#!/usr/bin/env python3
"""Crawler user agents: recall on public crawler lists, false positives on real browsers.

Compares CrawlerDetect alone, streamlearn's own rules alone (``crawler_rule``) and both
together (what ``analyse_user_agent`` flags, what the preprocess agent drops). The lists
are public, pinned to exact releases, checked against the SHA-256 recorded below and
cached (``--cache``, default ``~/.cache/streamlearn-bench/bots``):

- crawlers: every ``instances`` example of monperrus/crawler-user-agents (PyPI
  ``crawler-user-agents``), and the bot fixtures of Matomo's Device Detector, as shipped in
  its Python port (PyPI ``device-detector``, ``tests/fixtures/upstream/bots.yml``). The
  own rules were generalised after reading these two lists' misses, so they are no longer
  a held-out measure.
- held-out crawlers, never read to write the rules, from the fixtures of the Rust crate
  ``isbot`` (crates.io): myip.ms's list of live web bots
  (``fixtures/myip-ms-live-bots.json``, labelled bots by myip.ms; the user agents of CUBOT
  phones, listed there only because the brand contains "bot", are left out, as isbot's own
  test does), and the ``family: Spider`` user agents of ua-parser's uap-core
  ``tests/test_device.yaml`` (``fixtures/ua-parser-bots.json``). Few of them are in the two
  lists above or in CrawlerDetect's own test fixtures.
- browsers: intoli's ``user-agents`` (npm, ``dist/user-agents.json``: 10,000 weighted
  samples of real traffic) and ``fake-useragent`` (PyPI, ``data/browsers.jsonl``).

Downloads go through pip (``pip download --no-deps``), npm (``npm pack``) and crates.io's
download host (``static.crates.io``, the file cargo itself fetches).

    .venv/bin/python bench/bots.py            # both rule sets, the table, misses, FPs
    .venv/bin/python bench/bots.py --show 50  # more of the misses
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from crawlerdetect import CrawlerDetect

from streamlearn.agents.user_agents import analyse_user_agent, crawler_rule


@dataclass(frozen=True)
class Package:
    registry: str  # "pypi", "npm" or "crates"
    name: str
    version: str
    filename: str
    sha256: str


CRAWLER_USER_AGENTS = Package(
    "pypi", "crawler-user-agents", "1.67.0", "crawler_user_agents-1.67.0-py3-none-any.whl",
    "438880782e9689d953f850846bb7a425dd444de02be2b7c3e1bf2dd636b65d8c",
)  # fmt: skip
DEVICE_DETECTOR = Package(
    "pypi", "device-detector", "6.5.1", "device_detector-6.5.1-py3-none-any.whl",
    "a753fc24f7bdd54edfc1d78d08072c639a553dea109227a5644b39e9eed22583",
)  # fmt: skip
ISBOT_CRATE = Package(
    "crates", "isbot", "0.1.3", "isbot-0.1.3.crate",
    "f98d665d8689fd01bd1572c10fd58cf38a811f56c2d00b5ec5c0c50dc1eee956",
)  # fmt: skip
INTOLI_USER_AGENTS = Package(
    "npm", "user-agents", "2.1.198", "user-agents-2.1.198.tgz",
    "581c4f5074669b6f125263b8ddf302d221a26a06842488c6cc8d50dc5c5c0851",
)  # fmt: skip
FAKE_USERAGENT = Package(
    "pypi", "fake-useragent", "2.2.0", "fake_useragent-2.2.0-py3-none-any.whl",
    "67f35ca4d847b0d298187443aaf020413746e56acd985a611908c73dba2daa24",
)  # fmt: skip


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(package: Package, cache: Path) -> Path:
    """The package's file, from the cache or its registry; its SHA-256 checked each time."""
    path = cache / package.filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            command: list[str] | None = None
            if package.registry == "crates":
                url = f"https://static.crates.io/crates/{package.name}/{package.filename}"
                with urllib.request.urlopen(url, timeout=120) as response:
                    (Path(tmp) / package.filename).write_bytes(response.read())
            elif package.registry == "pypi":
                command = [
                    sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "--dest", tmp, f"{package.name}=={package.version}",
                ]  # fmt: skip
            else:
                npm = shutil.which("npm")
                if npm is None:
                    raise SystemExit(f"npm is needed to fetch {package.name}@{package.version}")
                command = [npm, "pack", "--silent", f"{package.name}@{package.version}"]
            if command is not None:
                subprocess.run(command, check=True, cwd=tmp, stdout=subprocess.DEVNULL)
            downloaded = Path(tmp) / package.filename
            if not downloaded.exists():
                raise SystemExit(
                    f"{package.name}: expected {package.filename} in {os.listdir(tmp)}"
                )
            downloaded.replace(path)
    digest = _sha256(path)
    if digest != package.sha256:
        raise SystemExit(
            f"{path}: sha256 {digest}, expected {package.sha256} (delete it to download again)"
        )
    return path


def _wheel_member(path: Path, member: str) -> bytes:
    with zipfile.ZipFile(path) as wheel:
        return wheel.read(member)


def _tar_member(path: Path, member: str) -> bytes:
    with tarfile.open(path) as archive:
        handle = archive.extractfile(member)
        if handle is None:
            raise SystemExit(f"{path}: no {member}")
        return handle.read()


def crawler_user_agents(cache: Path) -> list[str]:
    data = _wheel_member(
        fetch(CRAWLER_USER_AGENTS, cache), "crawleruseragents/crawler-user-agents.json"
    )
    return [ua for entry in json.loads(data) for ua in entry.get("instances", [])]


def matomo_bots(cache: Path) -> list[str]:
    data = _wheel_member(
        fetch(DEVICE_DETECTOR, cache), "device_detector/tests/fixtures/upstream/bots.yml"
    )
    return [entry["user_agent"] for entry in yaml.safe_load(data) if entry.get("user_agent")]


def myip_ms_bots(cache: Path) -> list[str]:
    """myip.ms's live web bots, less CUBOT phones (a brand, not a bot: isbot skips them too)."""
    data = _tar_member(fetch(ISBOT_CRATE, cache), "isbot-0.1.3/fixtures/myip-ms-live-bots.json")
    return [ua for ua in json.loads(data) if "CUBOT" not in ua]


def uap_core_spiders(cache: Path) -> list[str]:
    """uap-core's test_device.yaml user agents of family Spider, as isbot extracted them."""
    data = _tar_member(fetch(ISBOT_CRATE, cache), "isbot-0.1.3/fixtures/ua-parser-bots.json")
    return [str(ua) for ua in json.loads(data)]


def intoli_browsers(cache: Path) -> list[str]:
    data = _tar_member(fetch(INTOLI_USER_AGENTS, cache), "package/dist/user-agents.json")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return [entry["userAgent"] for entry in json.loads(data)]


def fake_useragent_browsers(cache: Path) -> list[str]:
    data = _wheel_member(fetch(FAKE_USERAGENT, cache), "fake_useragent/data/browsers.jsonl")
    lines = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    return [json.loads(line)["useragent"] for line in lines if line.strip()]


def _crawlerdetect() -> Callable[[str], str | None]:
    detector = CrawlerDetect()

    def detect(user_agent: str) -> str | None:
        return f"crawlerdetect:{detector.getMatches()}" if detector.isCrawler(user_agent) else None

    return detect


DETECTORS: dict[str, Callable[[str], str | None]] = {
    "crawlerdetect": _crawlerdetect(),
    "own rules": crawler_rule,
    "streamlearn": lambda ua: analyse_user_agent(ua).crawler,
}


@dataclass
class Result:
    name: str
    kind: str  # "crawlers" or "browsers"
    count: int
    distinct: int
    flagged: dict[str, int]
    misses: list[str]  # crawlers not flagged by streamlearn, browsers flagged (with reason)
    rules: Counter[str]


def measure(name: str, kind: str, user_agents: list[str]) -> Result:
    flagged: dict[str, int] = {}
    verdicts: dict[str, dict[str, str | None]] = {}
    for detector, detect in DETECTORS.items():
        cache: dict[str, str | None] = {}
        for ua in user_agents:
            if ua not in cache:
                cache[ua] = detect(ua)
        verdicts[detector] = cache
        flagged[detector] = sum(1 for ua in user_agents if cache[ua])
    final = verdicts["streamlearn"]
    rules = Counter((final[ua] or "none").split(":", 1)[0] for ua in user_agents)
    if kind == "crawlers":
        misses = sorted({ua for ua in user_agents if not final[ua]})
    else:
        misses = sorted({f"{final[ua]}  <-  {ua}" for ua in user_agents if final[ua]})
    return Result(name, kind, len(user_agents), len(set(user_agents)), flagged, misses, rules)


def _cell(result: Result, detector: str) -> str:
    flagged = result.flagged[detector]
    if result.kind == "crawlers":
        return f"{flagged / result.count:.4f} ({result.count - flagged} missed)"
    return f"{flagged} FP ({flagged / result.count:.2%})"


def print_table(results: list[Result]) -> None:
    header = ["list", "kind", "count (distinct)", *DETECTORS]
    rows = [
        [r.name, r.kind, f"{r.count:,} ({r.distinct:,})", *(_cell(r, d) for d in DETECTORS)]
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    print("\ncrawlers: recall (missed); browsers: false positives. 'streamlearn' = crawlerdetect")
    print("first, then the own rules: what analyse_user_agent flags.")


def timing(user_agents: list[str]) -> dict[str, float]:
    """µs per distinct user agent, uncached (what the first sighting of an agent costs)."""
    distinct = list(dict.fromkeys(user_agents))
    detector = CrawlerDetect()
    steps: dict[str, Callable[[str], object]] = {
        "crawlerdetect": detector.isCrawler,
        "own rules": crawler_rule.__wrapped__,
        "analyse_user_agent (both + ua-parser)": analyse_user_agent.__wrapped__,
    }
    result = {}
    for name, step in steps.items():
        start = time.perf_counter()
        for ua in distinct:
            step(ua)
        result[name] = (time.perf_counter() - start) / len(distinct) * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "streamlearn-bench" / "bots"
    )
    parser.add_argument("--show", type=int, default=20, help="misses shown per list")
    args = parser.parse_args()

    lists = [
        ("crawler-user-agents 1.67.0", "crawlers", crawler_user_agents(args.cache)),
        ("matomo bots.yml (device-detector 6.5.1)", "crawlers", matomo_bots(args.cache)),
        ("myip.ms live bots (isbot crate 0.1.3)", "crawlers", myip_ms_bots(args.cache)),
        ("uap-core Spider (isbot crate 0.1.3)", "crawlers", uap_core_spiders(args.cache)),
        ("intoli user-agents 2.1.198", "browsers", intoli_browsers(args.cache)),
        ("fake-useragent 2.2.0", "browsers", fake_useragent_browsers(args.cache)),
    ]
    results = [measure(name, kind, uas) for name, kind, uas in lists]
    print_table(results)
    for result in results:
        print(f"\n{result.name}: rule that fired, per {result.kind[:-1]} user agent")
        print("  " + ", ".join(f"{rule} {n:,}" for rule, n in result.rules.most_common()))
        if not result.misses:
            continue
        what = "misses" if result.kind == "crawlers" else "false positives"
        print(f"{result.name}: {len(result.misses)} distinct {what}, first {args.show}:")
        for line in result.misses[: args.show]:
            print(f"  {line}")
    everything = [ua for _, _, uas in lists for ua in uas]
    costs = timing(everything)
    print(
        "\nuncached, per distinct user agent: "
        + ", ".join(f"{k} {v:.0f} µs" for k, v in costs.items())
    )


if __name__ == "__main__":
    main()
