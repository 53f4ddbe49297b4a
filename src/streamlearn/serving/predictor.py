"""One predict request, end to end: route, score, apply rules, degrade, log.

:meth:`Predictor.predict` is synchronous on purpose: it reads each model it uses once from
the store and runs to the response without yielding to the event loop, so a swap can never
happen in the middle of a request (one model version per request, batch included).

Per instance: the experiment covering the endpoint (if any) assigns the user's arm, which
names the model that answers; a missing model, a model older than the maximum age, or a
model that raises or returns a non-finite score answers the spec's fallback with
``degraded: true`` and the reason (``no_model``, ``stale_model``, ``model_error``), counted;
otherwise the score goes through the business rules (clamp, threshold, cap). Every
prediction, degraded or not, is offered to telemetry as a ``PredictionServed``.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Mapping
from typing import Any

from streamlearn.log_repeats import RepeatedLines
from streamlearn.models import SPECS, BusinessRules, ModelSpec
from streamlearn.serving.experiments import (
    Experiment,
    ExperimentBook,
    base_model,
    served_model,
)
from streamlearn.serving.metrics import ServingMetrics
from streamlearn.serving.models import ModelStore, Served
from streamlearn.serving.rules import ActionCap, RuleEngine, fallback
from streamlearn.serving.scoring import Scorer, scorer_for
from streamlearn.serving.telemetry import TelemetrySink
from streamlearn.serving.validation import Instance, check_numbers

log = logging.getLogger(__name__)

DEFAULT_RULES = BusinessRules()
SOURCE = "serve"
ID_BYTES = 12
"""Random bytes of a request id the worker makes (96 bits: unique and unguessable)."""
FAILURE_LOG_EVERY_S = 10.0
"""A model's failures on instances are logged (with a traceback) once per this interval."""


class Route:
    """What every instance of a request routed to one model needs, looked up once per
    request: the scorer (None when the model cannot answer, with the reason), the version,
    the rules' fields and, with a positive-decision cap, the current window's cap."""

    __slots__ = (
        "cap",
        "capped_decision",
        "capped_key",
        "clamp_max",
        "clamp_min",
        "fallback_decision",
        "fallback_score",
        "label",
        "limit",
        "max_age",
        "negative",
        "positive",
        "reason",
        "rules",
        "score",
        "served",
        "threshold",
        "version",
        "window_s",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        rules: BusinessRules,
        served: Served | None,
        score: Scorer | None,
        reason: str | None,
        max_age: float | None,
        engine: RuleEngine,
        now: float,
    ) -> None:
        self.rules = rules
        self.served = served
        self.score: Scorer = score or _unused
        self.reason = reason
        self.max_age = max_age
        version = 0 if served is None or reason is not None else served.loaded.version
        self.version = version
        self.label = served_model(name)
        self.clamp_min, self.clamp_max = rules.clamp_min, rules.clamp_max
        self.threshold = rules.threshold
        self.positive, self.negative = rules.positive_decision, rules.negative_decision
        limit = rules.positive_cap_per_window
        self.limit = 0 if limit is None else limit
        self.window_s = rules.cap_window_s
        self.cap: ActionCap | None = None
        # The cap is the served model's: a `ctr~newest` arm's decisions are ctr's, and the
        # arms of one model together act at most its cap (not a cap per route).
        if limit is not None and rules.threshold is not None and reason is None:
            self.cap = engine.cap(self.label, rules.cap_window_s, now)
        self.capped_decision = rules.fallback_decision or rules.negative_decision
        self.capped_key = (self.label,)  # its key in the capped-decisions counter
        fallback_score, self.fallback_decision = fallback(rules)[:2]
        self.fallback_score = fallback_score


def _unused(features: Any, context: Any) -> float:
    raise AssertionError("a route that cannot answer is never scored")


class Predictor:
    def __init__(
        self,
        *,
        store: ModelStore,
        book: ExperimentBook,
        metrics: ServingMetrics,
        telemetry: TelemetrySink | None,
        worker_version: str,
        max_model_age_s: float | None,
        specs: Mapping[str, ModelSpec] = SPECS,
    ) -> None:
        self.store = store
        self.book = book
        self.metrics = metrics
        self.telemetry = telemetry
        self.worker_version = worker_version
        self.max_model_age_s = max_model_age_s
        self.specs = specs
        self.engine = RuleEngine()
        self.worker_id = f"{socket.gethostname()}:{uuid.uuid4().hex[:6]}"
        self._stale_alerted: set[tuple[str, int]] = set()
        self._failure_lines = RepeatedLines(FAILURE_LOG_EVERY_S)
        self._routes: dict[str, Route] = {}
        self._numbers: dict[str, tuple[Experiment | None, dict[str, str]]] = {}
        """What :meth:`numeric_features` found per endpoint, with the experiment that
        covered it then."""
        # Request ids: 96 random bits each, cut from one read of the OS's random source
        # per 341 ids (0.12 µs an id, as cheap as the counter they replace). A prediction's
        # feedback is joined by its id, so an id must not be guessable: with a per-worker
        # prefix and a counter, one answer told anyone the next ids, and a probe sent
        # clicks for other users' predictions (and took their ids for its own).
        self._random = ""
        """Random bits as hex digits, :data:`ID_BYTES` of them per id (refilled)."""
        self._random_at = 0

    def rules_for(self, model_name: str, served: Served | None) -> BusinessRules:
        if served is not None:
            return served.loaded.spec.rules
        base = base_model(model_name)
        # A model this worker does not serve (an experiment's arm, `experiments set`
        # warns of it) answers its shipped spec's fallback, not rules of no spec.
        spec = self.specs.get(base) or SPECS.get(base)
        return DEFAULT_RULES if spec is None else spec.rules

    def predict(
        self,
        endpoint: str,
        instances: list[Instance],
        request_id: str | None,
        started: float,
        *,
        batch: bool,
        numbers_checked: bool = False,
    ) -> dict[str, Any]:
        """The response body of a predict request (telemetry offered as a side effect);
        ``batch``: the body was a batch, whose instance *i* is ``<request_id>-<i>``;
        ``numbers_checked``: the instances were parsed with this endpoint's
        :meth:`numeric_features` (the HTTP handler's one pass), else they are checked here."""
        now = time.time()
        base_id = request_id or self._new_id()
        single = not batch
        experiment = self.book.covering(endpoint)
        if not numbers_checked:
            numeric = self.numeric_features(endpoint, experiment)
            if numeric:
                check_numbers(instances, numeric, batch)
        experiment_name = None if experiment is None else experiment.name
        # Per served model, once per request: everything an instance needs (Route).
        routes: dict[str, Route] = {}
        predictions: list[dict[str, Any]] = []
        append = predictions.append
        served_counts = self.metrics.served.counts
        capped_counts = self.metrics.capped_by.counts
        arm_name: str | None = None
        arm_key = ""
        name = endpoint
        route = None if experiment is not None else self._route(name, now)
        for index, instance in enumerate(instances):
            if experiment is not None:
                arm = experiment.assign(instance.user_id)
                arm_name = arm_key = arm.name
                name = arm.model_name
                route = routes.get(name)
                if route is None:
                    route = routes[name] = self._route(name, now)
            assert route is not None
            reason = route.reason
            version = route.version
            capped = False
            if reason is None:
                try:
                    raw = route.score(instance.features, instance.context)
                    if raw - raw != 0.0:  # nan or ±inf (cheaper than math.isfinite's call)
                        raise ValueError(f"non-finite score {raw}")
                except Exception:
                    self._log_failure(name, version)
                    reason, version = "model_error", 0
            if reason is None:
                # RuleEngine.decide, with the rules' fields looked up once per request.
                score = min(max(raw, route.clamp_min), route.clamp_max)
                threshold = route.threshold
                if threshold is None:
                    decision = None
                elif score < threshold:
                    decision = route.negative
                elif route.cap is None:
                    decision = route.positive
                else:
                    cap = route.cap
                    cap.count += 1
                    if cap.count <= route.limit:
                        decision = route.positive
                    else:
                        # Counted inline, with the route's key (no call and no key tuple
                        # per capped instance); the alert once, when the cap is reached.
                        decision, capped = route.capped_decision, True
                        capped_key = route.capped_key
                        capped_counts[capped_key] = capped_counts.get(capped_key, 0) + 1
                        if cap.count == route.limit + 1:
                            self._alert_cap(route.label, version, route.rules)
            else:
                score, decision = route.fallback_score, route.fallback_decision
                self._count_degraded(name, reason)
            key = (name, arm_key)
            served_counts[key] = served_counts.get(key, 0) + 1
            append(
                {
                    "request_id": instance.request_id
                    or (base_id if single else f"{base_id}-{index}"),
                    "user_id": instance.user_id,
                    "model_name": route.label,  # ctr~newest answers as ctr
                    "model_version": version or None,
                    "experiment": experiment_name,
                    "arm": arm_name,
                    "score": score,
                    "decision": decision,
                    "degraded": reason is not None,
                    "degraded_reason": reason,
                    "capped": capped,
                }
            )
        telemetry = self.telemetry
        if telemetry is not None:
            telemetry.offer_predictions(
                predictions,
                instances,
                int(now * 1000),
                (time.perf_counter() - started) * 1000.0,
                self.worker_version,
            )
        return {"request_id": base_id, "model_name": endpoint, "predictions": predictions}

    def numeric_features(
        self, endpoint: str, experiment: Experiment | None = None
    ) -> dict[str, str]:
        """Each feature a model answering ``endpoint`` reads as a number → the spec that
        does (the endpoint's first, then, under ``experiment``, its arms'): what a predict
        request refuses as a string. ``experiment``: the one covering the endpoint."""
        known = self._numbers.get(endpoint)
        # By identity: a new experiment record is a new object (and hashing one is slow).
        if known is not None and known[0] is experiment:
            return known[1]
        names = [endpoint] + ([] if experiment is None else [a.model_name for a in experiment.arms])
        numeric: dict[str, str] = {}
        for name in names:
            spec = self.specs.get(base_model(name))
            if spec is not None:
                for feature in spec.numeric_features:
                    numeric.setdefault(feature, spec.name)
        if len(self._numbers) >= 256:  # endpoints are client-chosen: bounded
            self._numbers.clear()
        self._numbers[endpoint] = (experiment, numeric)
        return numeric

    def _new_id(self) -> str:
        """A request id no client can guess: 96 random bits as 24 hex digits."""
        at = self._random_at
        end = at + 2 * ID_BYTES
        if end > len(self._random):
            self._random, at, end = os.urandom(ID_BYTES * 341).hex(), 0, 2 * ID_BYTES
        self._random_at = end
        return self._random[at:end]

    def _route(self, name: str, now: float) -> Route:
        """The route of ``name`` for a request at ``now``: the model serving it (read once
        per request), its rules, and whether it cannot answer (``no_model``,
        ``stale_model``) or its version. Kept between requests while the same model
        serves and is not stale; its cap is moved to the window of ``now``."""
        served = self.store.get(name)
        route = self._routes.get(name)
        if route is not None and route.served is served:
            if served is None:
                return route  # no_model: the fallback until a model is put
            max_age = route.max_age
            if route.reason is None and (max_age is None or not now - served.created_s > max_age):
                cap = route.cap
                if cap is not None:
                    window = int(now // route.window_s)
                    if window != cap.window:
                        cap.window, cap.count = window, 0
                return route
        route = self._routes[name] = self._new_route(name, served, now)
        return route

    def _new_route(self, name: str, served: Served | None, now: float) -> Route:
        rules = self.rules_for(name, served)
        if served is None:
            return Route(name, rules, None, None, "no_model", None, self.engine, now)
        max_age = self.max_model_age_s or rules.max_model_age_s
        if max_age is not None and now - served.created_s > max_age:
            self._alert_stale(name, served, max_age, now)
            return Route(name, rules, served, None, "stale_model", max_age, self.engine, now)
        loaded = served.loaded
        score = served.score or scorer_for(loaded.spec, loaded.model)
        return Route(name, rules, served, score, None, max_age, self.engine, now)

    def _log_failure(self, name: str, version: int) -> None:
        """Log the exception being handled, a model's failure on an instance, with its
        traceback: once per interval for one model, then with how many were left out (a
        client sending what the model cannot take would otherwise fill the log, a
        traceback per instance; each is counted in ``degraded``)."""
        if not log.isEnabledFor(logging.ERROR):
            return
        record = log.makeRecord(
            log.name, logging.ERROR, __file__, sys._getframe(1).f_lineno,
            "model %s v%d failed", (name, version), sys.exc_info(),
        )  # fmt: skip
        if self._failure_lines.filter(record):
            log.handle(record)

    def _count_degraded(self, name: str, reason: str) -> None:
        counts = self.metrics.degraded_by.counts
        counts[name, reason] = counts.get((name, reason), 0) + 1

    def alert(
        self,
        kind: str,
        key: str,
        message: str,
        *,
        severity: str = "warning",
        model_name: str | None = None,
        model_version: int | None = None,
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        self.metrics.alerts.labels(kind=kind).inc()
        log.warning("alert %s: %s", kind, message)
        if self.telemetry is None:
            return
        self.telemetry.offer(
            "alert",
            key,
            {
                "alert_key": key,
                "kind": kind,
                "severity": severity,
                "message": message,
                "model_name": model_name,
                "model_version": model_version,
                "value": value,
                "threshold": threshold,
                "labels": {"worker": self.worker_id, "worker_version": self.worker_version},
                "source": SOURCE,
                "raised_ts": int(time.time() * 1000),
            },
        )

    def _alert_cap(self, name: str, version: int, rules: BusinessRules) -> None:
        self.metrics.cap_reached.labels(model=name).inc()
        cap = float(rules.positive_cap_per_window or 0)
        self.alert(
            "action_limit",
            f"action_limit:{name}",
            f"{name}: {cap:.0f} positive decisions in {rules.cap_window_s:g}s reached; "
            f"answering {rules.fallback_decision or rules.negative_decision!r} until the "
            "window ends",
            model_name=name,
            model_version=version or None,
            value=float(self.engine.used(name)),
            threshold=cap,
        )

    def _alert_stale(self, name: str, served: Served, max_age: float, now: float) -> None:
        key = (name, served.loaded.version)
        if key in self._stale_alerted:
            return
        self._stale_alerted.add(key)
        self.alert(
            "stale_model",
            f"stale_model:{name}",
            f"{name} v{served.loaded.version} is {now - served.created_s:.0f}s old, over the "
            f"{max_age:g}s limit; serving the fallback",
            model_name=name,
            model_version=served.loaded.version,
            value=now - served.created_s,
            threshold=max_age,
        )
