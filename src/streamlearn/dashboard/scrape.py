"""Reading the parts' Prometheus endpoints (``--scrape``): targets, fetching, parsing.

Topics say what flowed; some figures exist only inside the processes that count them
(events dropped as a bot's, duplicates, fallback answers) and whether a process is up at
all. Each ``--scrape`` target is read once a tick with a short timeout; a target that does
not answer is *down* for that tick, which is what the processes table shows. Parsing is
prometheus_client's own text parser, the format every part exports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from streamlearn.dashboard.exceptions import DashboardError

Labels = tuple[tuple[str, str], ...]
Samples = dict[tuple[str, Labels], float]
"""{(sample name, sorted labels): value} of one scrape."""

MAX_BODY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ScrapeTarget:
    """A named Prometheus endpoint of one part."""

    name: str
    url: str

    @classmethod
    def parse(cls, text: str) -> ScrapeTarget:
        """``NAME=URL`` or ``URL`` (named by its host and port)."""
        name, sep, url = text.partition("=")
        if not sep or "://" in name:
            name, url = "", text
        if not _reachable_url(url):
            raise DashboardError(f"--scrape {text!r}: expected [NAME=]http(s)://host:port/metrics")
        return cls(name or urlsplit(url).netloc, url)


def _reachable_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port, if any. Checked at the start: a typo
    in the port (``:abc``, ``:99999``) or a host left out was a target down for good, its
    only error the URL itself, and an unclosed ``[`` ended the command with a traceback."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is no number in range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_samples(text: str) -> Samples:
    """Prometheus text exposition → :data:`Samples`."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(
    samples: Mapping[tuple[str, Labels], float], name: str, labels: Labels = ()
) -> float | None:
    """Sum of the samples named ``name`` whose labels include ``labels``; None when the
    target exports no such sample (not the same as zero)."""
    wanted = set(labels)
    values = [v for (n, lab), v in samples.items() if n == name and wanted <= set(lab)]
    return sum(values) if values else None


@dataclass(frozen=True)
class ScrapeResult:
    """One target's answer: its samples, or why there are none."""

    target: ScrapeTarget
    samples: Samples | None
    error: str | None = None


async def scrape_one(
    session: aiohttp.ClientSession, target: ScrapeTarget, timeout_s: float
) -> ScrapeResult:
    try:
        async with session.get(
            target.url, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            if response.status != 200:
                return ScrapeResult(target, None, f"HTTP {response.status}")
            body = await response.content.read(MAX_BODY_BYTES)
            kind = response.content_type
        text = body.decode("utf-8", "replace")
        try:
            return ScrapeResult(target, parse_samples(text))
        except ValueError as exc:  # the text parser's error for a malformed exposition
            said = f": {exc}" if str(exc) else ""
            return ScrapeResult(
                target, None, f"not Prometheus metrics ({kind}, begins {text[:40]!r}){said}"
            )
    except TimeoutError:
        return ScrapeResult(target, None, f"no answer in {timeout_s:g}s")
    except aiohttp.ClientError as exc:
        return ScrapeResult(target, None, str(exc) or type(exc).__name__)


async def scrape_all(
    session: aiohttp.ClientSession, targets: Sequence[ScrapeTarget], timeout_s: float
) -> list[ScrapeResult]:
    return list(await asyncio.gather(*(scrape_one(session, t, timeout_s) for t in targets)))
