"""What `up --simulate` sets up besides the system: the short clock's settings and the
changes it injects into the simulated world."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

from streamlearn.settings import ENV_PREFIX
from streamlearn.settings_loading import load_settings
from streamlearn.simulate.changes import CHANGE_KINDS, Change, parse_change

# What `up --simulate` changes unless the environment sets it: the simulated world lives
# minutes, not days, so its sessions, label horizons and snapshots run on a short clock;
# all its traffic comes through one local collector, so the collector must trust the
# simulator's X-Forwarded-For (else the per-IP bot rule sees one very busy address); the
# monitor's windows are sized for its rate.
SIMULATE_DEFAULTS = {
    "STREAMLEARN_MODELS": '["ctr", "ctr_tree"]',
    "STREAMLEARN_LABEL_HORIZON_S": "20",
    "STREAMLEARN_LABEL_ALLOWED_LATENESS_S": "5",
    "STREAMLEARN_SNAPSHOT_EVERY_S": "5",
    "STREAMLEARN_SESSION_GAP_S": "60",
    "STREAMLEARN_SESSION_ALLOWED_LATENESS_S": "20",
    "STREAMLEARN_COLLECTOR_TRUST_FORWARDED_FOR": "true",
    # About 10 predictions a second per partition and arm: references of 300 records
    # spread over a minute, windows of 10 s, so a change `--drift-at` injects after the
    # first minute shows within a minute.
    "STREAMLEARN_MONITOR_REFERENCE_RECORDS": "300",
    "STREAMLEARN_MONITOR_REFERENCE_SPAN_S": "60",
    "STREAMLEARN_MONITOR_WINDOW_RECORDS": "100",
}


def apply_simulate_defaults(environ: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """Set ``SIMULATE_DEFAULTS`` that no settings source sets (the environment, a `.env`
    file, ``STREAMLEARN_CONFIG_FILE``); returns those set. Put in the environment, a
    default outranks both files: one they set was overridden, without a word."""
    given = _settings_given()
    applied = {
        name: value
        for name, value in SIMULATE_DEFAULTS.items()
        if name not in environ and name.removeprefix(ENV_PREFIX).lower() not in given
    }
    environ.update(applied)
    return applied


def _settings_given() -> set[str]:
    """The settings a source sets, by field name; none when the settings do not load
    (the command then refuses them, saying why)."""
    try:
        return set(load_settings().model_fields_set)
    except Exception:
        return set()


UP_CHANGE_KINDS = tuple(kind for kind in CHANGE_KINDS if kind != "broken_model")
"""What ``up --change`` injects (a broken model is the lab's: here the worker serves what
the learner publishes)."""


def check_drift_at(drift_at_s: float | None) -> None:
    """ValueError naming ``--drift-at`` unless it is a simulated second of 0 or more."""
    if drift_at_s is not None and not (math.isfinite(drift_at_s) and drift_at_s >= 0):
        raise ValueError(f"--drift-at {drift_at_s:g}: a simulated second of 0 or more")


def simulated_changes(
    drift_at_s: float | None, changes: Sequence[str], duration_s: float | None = None
) -> tuple[Change, ...]:
    """What ``--drift-at S`` (the world drifts: prices and what people like, at S) and
    ``--change KIND@S`` inject. A broken model is the lab's only (bench/drift.py): here
    the prediction worker serves what the learner publishes. A change at or after the end
    of a run of ``duration_s`` is refused: it would never happen, and the run would pass
    its checks without it."""
    injected = []
    for text in changes:
        if text.strip().partition("@")[0].strip() == "broken_model":
            raise ValueError("broken_model is injected by the lab only (bench/drift.py)")
        injected.append(parse_change(text, UP_CHANGE_KINDS))
    check_drift_at(drift_at_s)
    if drift_at_s is not None:
        injected += [Change("feature_drift", drift_at_s), Change("concept_drift", drift_at_s)]
    if duration_s is not None:
        late = [str(c) for c in injected if c.at_s >= duration_s]
        if late:
            raise ValueError(
                f"{', '.join(late)}: after the run ends (--duration {duration_s:g}); "
                "a change needs a second before the end"
            )
    return tuple(injected)
