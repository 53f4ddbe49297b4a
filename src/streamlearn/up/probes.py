"""What the running system is doing, read the way an operator would: each part's Prometheus
``/metrics`` and the prediction worker's ``/v1/models``.

Counters live in the processes that count; a restarted process starts from zero. The
totals here survive that: a counter that went down means a new process, and what the old
one had counted is kept as a base (as Prometheus' ``increase()`` does across resets).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

Labels = tuple[tuple[str, str], ...]
SampleKey = tuple[str, Labels]


def parse_metrics(text: str) -> dict[SampleKey, float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    samples: dict[SampleKey, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


class ResetSafeCounters:
    """Totals of counter samples across restarts of the process that exports them."""

    def __init__(self) -> None:
        self._last: dict[SampleKey, float] = {}
        self._base: dict[SampleKey, float] = {}

    def update(self, samples: Mapping[SampleKey, float]) -> dict[SampleKey, float]:
        totals: dict[SampleKey, float] = {}
        for key, value in samples.items():
            if not key[0].endswith("_total"):
                totals[key] = value  # a gauge: its current value is the figure
                continue
            last = self._last.get(key, 0.0)
            if value < last:
                self._base[key] = self._base.get(key, 0.0) + last
            self._last[key] = value
            totals[key] = self._base.get(key, 0.0) + value
        for key, last in self._last.items():
            totals.setdefault(key, self._base.get(key, 0.0) + last)
        return totals


def total(samples: Mapping[SampleKey, float], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and wanted <= set(lab))


@dataclass
class ModelView:
    """One served model as the worker reports it, plus what this run saw of it."""

    name: str
    version: int | None = None
    auc: float | None = None
    served_auc: float | None = None
    trained_examples: int | None = None
    versions_seen: set[int] = field(default_factory=set)
    freshness_s: list[float] = field(default_factory=list)
    since_s: float | None = None
    """When this run began (epoch seconds): a model first seen created before it resumed."""
    resumed: bool | None = None
    """Whether the first version this run saw was made before it (an earlier run's, in the
    same data directory): then its served figures, since its first version, include
    earlier runs and are not comparable with this run's ceiling."""

    def observe(self, info: Mapping[str, Any]) -> None:
        if not info.get("loaded"):
            return
        if self.resumed is None and self.since_s is not None:
            created = _epoch_s(info.get("created_ts"))
            self.resumed = created is not None and created < self.since_s
        version = int(info["version"])
        metrics = info.get("metrics") or {}
        self.auc = _finite(metrics.get("auc"))
        self.served_auc = _finite(metrics.get("served_auc"))
        self.trained_examples = info.get("trained_examples")
        if version != self.version:
            self.version = version
            self.versions_seen.add(version)
            # The worker's own figure: only snapshots published while it ran count (after
            # a restart it first loads one published long before).
            freshness_ms = info.get("freshness_ms")
            if isinstance(freshness_ms, int | float):
                self.freshness_s.append(freshness_ms / 1000)

    def freshness_ms(self) -> dict[str, float] | None:
        """p50/p99 of snapshot published → served by the worker, over the versions seen
        that were published while it ran."""
        if not self.freshness_s:
            return None
        p50, p99 = np.percentile(self.freshness_s, [50, 99])
        return {"p50": round(float(p50) * 1000, 1), "p99": round(float(p99) * 1000, 1)}


def _epoch_s(iso: object) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp() if iso else None
    except ValueError:
        return None


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class SystemProbe:
    """Polls the parts' metrics endpoints and the worker's model list."""

    def __init__(
        self,
        metrics_urls: Mapping[str, str],
        models_url: str | None,
        models_headers: Mapping[str, str] | None = None,
        started_s: float | None = None,
    ) -> None:
        self.metrics_urls = dict(metrics_urls)
        self.models_url = models_url
        self.models_headers = dict(models_headers or {})
        """Sent with the model list's request (a bearer token when the API has tokens)."""
        self.counters = {name: ResetSafeCounters() for name in self.metrics_urls}
        self.samples: dict[str, dict[SampleKey, float]] = {n: {} for n in self.metrics_urls}
        self.models: dict[str, ModelView] = {}
        self.polled_at = 0.0
        self.previous: tuple[float, dict[str, dict[SampleKey, float]]] | None = None
        self.started_s = time.time() if started_s is None else started_s
        """When this run began (epoch seconds; None: now): a model whose first version seen
        was created before it is an earlier run's (``ModelView.resumed``)."""

    async def poll(self, session: aiohttp.ClientSession) -> None:
        names = list(self.metrics_urls)
        texts = await asyncio.gather(
            *(self._get_text(session, self.metrics_urls[n]) for n in names)
        )
        if self.polled_at:
            self.previous = (self.polled_at, {n: dict(s) for n, s in self.samples.items()})
        for name, text in zip(names, texts, strict=True):
            if text is not None:
                self.samples[name] = self.counters[name].update(parse_metrics(text))
        self.polled_at = time.monotonic()
        if self.models_url is not None:
            body = await self._get_json(session, self.models_url, self.models_headers)
            for info in (body or {}).get("models", []):
                view = self.models.get(info["name"])
                if view is None:
                    view = self.models[info["name"]] = ModelView(
                        info["name"], since_s=self.started_s
                    )
                view.observe(info)

    def total(self, part: str, name: str, **labels: str) -> float:
        return total(self.samples.get(part, {}), name, **labels)

    def rate(self, part: str, name: str, **labels: str) -> float:
        """Per second since the previous poll."""
        if self.previous is None:
            return 0.0
        then, samples = self.previous
        elapsed = self.polled_at - then
        before = total(samples.get(part, {}), name, **labels)
        return max(0.0, self.total(part, name, **labels) - before) / elapsed if elapsed else 0.0

    def label_values(self, part: str, name: str, label: str) -> Iterable[str]:
        return sorted(
            {dict(lab).get(label, "") for (n, lab) in self.samples.get(part, {}) if n == name}
            - {""}
        )

    def samples_where(self, part: str, name: str, value: float) -> list[dict[str, str]]:
        """Labels of ``part``'s samples named ``name`` whose value is ``value`` (sorted)."""
        return [
            dict(labels)
            for (n, labels), v in sorted(self.samples.get(part, {}).items())
            if n == name and v == value
        ]

    @staticmethod
    async def _get_text(session: aiohttp.ClientSession, url: str) -> str | None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with session.get(url) as response:
                if response.status == 200:
                    return await response.text()
        return None

    @staticmethod
    async def _get_json(
        session: aiohttp.ClientSession, url: str, headers: Mapping[str, str]
    ) -> dict[str, Any] | None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(url, headers=headers) as response:
                if response.status == 200:
                    body = await response.json()
                    return body if isinstance(body, dict) else None
        return None
