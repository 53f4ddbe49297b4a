"""Changes injected into the simulated world at a chosen second, to evaluate monitoring.

A data-monitoring agent is only as good as what it notices, and the only way to know what
it should notice is to break the world on purpose, at a known time, in a known way. Each
:class:`Change` names one such break and the simulated second it starts
(``TrafficConfig(changes=(Change("bot_wave", 120.0),))``, or ``parse_change("bot_wave@120")``
from a command line). Before ``at_s`` the traffic is exactly what it would be without the
change (the same hits, drawn from the same generator); from ``at_s`` on:

- ``concept_drift``: the truth changes, not the inputs. The true click model flips two
  effects (mobile users click less instead of more; every category's effect is negated;
  see :mod:`~streamlearn.simulate.truth`), so a model trained before ranks those requests
  the wrong way round. The same as ``TrafficConfig.drift_at_s`` (which stays, as this
  change's older spelling).
- ``feature_drift``: the inputs change, not the truth. Recommended items get dearer: the
  log-normal price's location moves by +1.0 (every price multiplied by e, about 2.7), while the
  true model of a click given the features stays the same (covariate shift).
- ``field_dropped``: the app ships a new version. Events (and feedback) carry
  ``app_version`` ``f"{config.app_version}-2"`` and events no longer send ``session_hint``:
  the field stays in the schema, it is just never populated (null downstream).
- ``bot_wave``: more bots arrive, so that bots make about :data:`BOT_WAVE_SHARE` (40 %) of
  page views instead of ``bot_share``: extra crawlers and burst bots, half the extra rate
  each, created when the traffic is (from their own seeded generator, so the hits before
  are untouched) but first scheduled at ``at_s``. People keep their rate.
- ``broken_model``: the traffic does not change; the lab's stand-in model
  (:mod:`~streamlearn.simulate.lab`) serves ``1 - p`` from ``at_s`` under a new model
  version: a release that ranks everything backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

ChangeKind = Literal["feature_drift", "concept_drift", "field_dropped", "bot_wave", "broken_model"]
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)

PRICE_SHIFT = 1.0
"""``feature_drift``: added to the location of the log-normal price (prices times e)."""
BOT_WAVE_SHARE = 0.4
"""``bot_wave``: the share of page views made by bots once the wave has arrived."""
FIELD_DROPPED_SUFFIX = "-2"
"""``field_dropped``: appended to the configured app version by the new release."""


@dataclass(frozen=True)
class Change:
    """One change of the world, from simulated second ``at_s`` on."""

    kind: ChangeKind
    at_s: float

    def __post_init__(self) -> None:
        if self.kind not in CHANGE_KINDS:
            raise ValueError(
                f"unknown change {self.kind!r}: one of {', '.join(CHANGE_KINDS)} expected"
            )
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"change {self}: a simulated second of 0 or more")

    def __str__(self) -> str:
        return f"{self.kind}@{self.at_s:g}"


def parse_change(text: str, kinds: tuple[ChangeKind, ...] = CHANGE_KINDS) -> Change:
    """``"KIND@SECONDS"`` (e.g. ``"bot_wave@120"``) → :class:`Change`; ValueError naming the
    allowed ``kinds`` if it is not one."""
    name, at, seconds = text.strip().partition("@")
    kind = next((k for k in kinds if k == name.strip()), None)
    if kind is None or not at:
        raise ValueError(
            f"cannot read change {text!r}: KIND@SECONDS expected, KIND one of {', '.join(kinds)}"
        )
    try:
        at_s = float(seconds)
    except ValueError:
        raise ValueError(
            f"cannot read change {text!r}: {seconds!r} is not a number of seconds"
        ) from None
    return Change(kind, at_s)
