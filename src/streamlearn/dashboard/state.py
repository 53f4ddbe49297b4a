"""Everything the page shows, aggregated from decoded records, and what changed since a
client last looked.

One :class:`DashboardState` per dashboard, touched only on its event loop: the Kafka
threads hand their decoded records and samples over with ``call_soon_threadsafe``. The
page gets the whole state once (``GET /api/state``, and the first server-sent event), then
a delta a second: the rate points after the ones it has, and each other section only when
it changed (a revision per section; a client's :class:`Cursor` says what it has). A
section is built once per revision whatever the number of clients.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamlearn.dashboard.alerts import AlertLog
from streamlearn.dashboard.drift import DriftBoard
from streamlearn.dashboard.history import DEFAULT_MAX_POINTS, DEFAULT_WINDOW_S
from streamlearn.dashboard.models import ModelBoard
from streamlearn.dashboard.processes import ProcessBoard
from streamlearn.dashboard.rates import RateTable, Source
from streamlearn.dashboard.scrape import ScrapeResult, ScrapeTarget

PIPELINE = (
    ("in", "telemetry.events"),
    ("clean", "events.clean"),
    ("rejected", "events.rejected"),
    ("sessions", "events.sessions"),
    ("predictions", "telemetry.predictions"),
    ("feedback", "telemetry.feedback"),
    ("examples", "training.examples"),
)
"""Series of the pipeline chart: (name, topic whose end offsets count it)."""

FOLLOWED = ("model.state", "model.metrics", "monitoring.alerts", "monitoring.drift")
"""Topics whose records the dashboard reads, from the beginning."""

SECTIONS = ("models", "arms", "drift", "alerts", "processes", "status")
"""Sections sent whole when they changed (the rate tables are sent as new rows)."""


@dataclass(frozen=True)
class Decoded:
    """One decoded record of a followed topic."""

    topic: str
    """The topic's declared (logical) name, e.g. ``model.metrics``."""
    value: dict[str, Any]
    partition: int = 0
    offset: int = 0


@dataclass
class Cursor:
    """What one client has: each section's revision and the newest rate rows' times."""

    revisions: dict[str, int] = field(default_factory=dict)
    rates_t: float | None = None
    counters_t: float | None = None


@dataclass
class FollowStatus:
    """How reading the topics goes (shown in the page's header)."""

    assigned: dict[str, int] = field(default_factory=dict)
    """Followed topic → partitions assigned."""
    missing: list[str] = field(default_factory=list)
    error: str | None = None


class DashboardState:
    def __init__(
        self,
        *,
        topic_prefix: str = "",
        scrape: Sequence[ScrapeTarget] = (),
        window_s: float = DEFAULT_WINDOW_S,
        max_points: int = DEFAULT_MAX_POINTS,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.window_s = window_s
        self.tick_s = tick_s
        self.clock = clock
        self.scrape = tuple(scrape)
        self.models = ModelBoard(window_s=window_s, max_points=max_points)
        self.drift = DriftBoard()
        self.alerts = AlertLog(window_s=window_s)
        self.processes = ProcessBoard(self.scrape, window_s=window_s, max_points=max_points)
        self.pipeline = RateTable(
            [name for name, _ in PIPELINE], window_s=window_s, max_points=max_points
        )
        self.records = dict.fromkeys(FOLLOWED, 0)
        self.follow = FollowStatus()
        self.offsets_error: str | None = None
        self.revisions = dict.fromkeys(SECTIONS, 0)
        self._built: dict[str, tuple[int, Any]] = {}

    # --- input -----------------------------------------------------------------------

    def _changed(self, *sections: str) -> None:
        for section in sections:
            self.revisions[section] += 1

    def apply(self, records: Iterable[Decoded]) -> None:
        """Aggregate decoded records of the followed topics."""
        for record in records:
            value = record.value
            if record.topic == "model.state":
                self.models.add_snapshot(value)
                self._changed("models")
            elif record.topic == "model.metrics":
                self.models.add_metrics(value)
                self._changed("models", *(("arms",) if value.get("arm") else ()))
            elif record.topic == "monitoring.alerts":
                self.alerts.add(value, record.offset)
                self._changed("alerts")
            elif record.topic == "monitoring.drift":
                view = self.drift.add(value)
                self._changed("drift")
                if view["kind"] == "calibration":
                    self.models.add_calibration(view)
                    self._changed("models")
            else:
                continue
            self.records[record.topic] += 1
            self._changed("status")

    def sample_offsets(self, t: float, counts: Mapping[Source, float]) -> None:
        """End offsets read at ``t``: {(pipeline series, partition): offset}."""
        self.pipeline.sample(t, counts)

    def observe_scrape(self, t: float, results: Sequence[ScrapeResult]) -> None:
        self.processes.observe(t, results)
        self._changed("processes")

    def set_offsets_error(self, error: str | None) -> None:
        if error != self.offsets_error:
            self.offsets_error = error
            self._changed("status")

    def set_follow_status(self, status: FollowStatus) -> None:
        if status != self.follow:
            self.follow = status
            self._changed("status")

    # --- output ----------------------------------------------------------------------

    def _status(self) -> dict[str, Any]:
        return {
            "records": dict(self.records),
            "assigned": dict(self.follow.assigned),
            "missing": list(self.follow.missing),
            "error": self.follow.error,
            "offsets_error": self.offsets_error,
        }

    def _build(self, section: str) -> Any:
        if section == "models":
            return self.models.models_state()
        if section == "arms":
            return self.models.arms_state()
        if section == "drift":
            return self.drift.state()
        if section == "alerts":
            return self.alerts.state()
        if section == "processes":
            return self.processes.state()
        return self._status()

    def section(self, name: str) -> Any:
        """The section as sent, built once per revision."""
        revision = self.revisions[name]
        built = self._built.get(name)
        if built is None or built[0] != revision:
            built = (revision, self._build(name))
            self._built[name] = built
        return built[1]

    def config(self) -> dict[str, Any]:
        return {
            "topic_prefix": self.topic_prefix,
            "window_s": self.window_s,
            "tick_s": self.tick_s,
            "pipeline": [{"name": n, "topic": t} for n, t in PIPELINE],
            "followed": list(FOLLOWED),
            "scrape": [{"name": t.name, "url": t.url} for t in self.scrape],
        }

    def full(self) -> tuple[dict[str, Any], Cursor]:
        """The whole state, and the cursor of a client that has it."""
        payload: dict[str, Any] = {"server_time": self.clock(), "config": self.config()}
        payload["rates"] = self.pipeline.state()
        payload["counters"] = self.processes.counters.state()
        for name in SECTIONS:
            payload[name] = self.section(name)
        return payload, self._cursor()

    def _cursor(self) -> Cursor:
        return Cursor(
            dict(self.revisions),
            self.pipeline.table.newest_time(),
            self.processes.counters.table.newest_time(),
        )

    def delta(self, cursor: Cursor) -> tuple[dict[str, Any] | None, Cursor]:
        """What changed since ``cursor`` (None when nothing did), and the new cursor."""
        payload: dict[str, Any] = {}
        if self.pipeline.table.newest_time() != cursor.rates_t:
            payload["rates"] = self.pipeline.state(cursor.rates_t)
        if self.processes.counters.table.newest_time() != cursor.counters_t:
            payload["counters"] = self.processes.counters.state(cursor.counters_t)
        for name in SECTIONS:
            if self.revisions[name] != cursor.revisions.get(name):
                payload[name] = self.section(name)
        if not payload:
            return None, cursor
        payload["server_time"] = self.clock()
        return payload, self._cursor()
