"""The specs this deployment runs: the shipped specs named in settings, with overrides.

Learner and prediction workers both call :func:`configured_specs`, so the label horizon
(part of a snapshot's spec text, which workers compare before loading) and the snapshot
cadence are the same wherever the settings are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from streamlearn.exceptions import ConfigurationError
from streamlearn.models.specs import SPECS, ModelSpec, get_spec
from streamlearn.settings import Settings


def configured_spec(name: str, settings: Settings) -> ModelSpec:
    spec = get_spec(name)
    if settings.label_horizon_s is not None:
        spec = replace(spec, label=replace(spec.label, horizon_s=settings.label_horizon_s))
    if settings.snapshot_every_examples is not None:
        spec = replace(spec, snapshot_every_examples=settings.snapshot_every_examples)
    if settings.snapshot_every_s is not None:
        spec = replace(spec, snapshot_every_s=settings.snapshot_every_s)
    spec = gated_spec(spec, settings)
    warm_start = settings.model_warm_start.get(name)
    if warm_start is not None:
        # Here, not at the top: the experiments module loads the snapshot's (and numpy),
        # which the agents that read specs but learn nothing do not need at start.
        from streamlearn.serving.experiments import NAME, NAME_RULE

        # An empty name was shown as set and taken as none; `ctr@` names no shadow.
        base, _, shadow = warm_start.partition("@")
        if base != name or not shadow:
            raise ConfigurationError(
                f"model_warm_start: {name} can start from a snapshot of its own spec "
                f"published under another name ({name}@<shadow>), not {warm_start!r}"
            )
        if not NAME.fullmatch(shadow):
            # `replay model --shadow` publishes no other name: the learner would look for
            # it at every start and start cold (a space from a settings file, `~newest`).
            raise ConfigurationError(
                f"model_warm_start: {name}'s baseline {warm_start!r} names no shadow "
                f"`replay model --shadow` can publish ({NAME_RULE} after the @)"
            )
        spec = replace(spec, warm_start=warm_start)
    return spec


def gated_spec(spec: ModelSpec, settings: Settings) -> ModelSpec:
    """``spec`` with the promotion gate the settings give its model (as it is without one)."""
    gate = settings.model_promotion.get(spec.name)
    if gate is None:
        return spec
    return replace(
        spec,
        promotion_margin=gate.margin,
        promotion_window=gate.window,
        promotion_judge=gate.judge,
        promotion_after_examples=gate.after_examples,
        promotion_auc_margin=gate.auc_margin,
    )


def base_model_name(snapshot_name: str) -> str:
    """``ctr@history`` → ``ctr``."""
    return snapshot_name.split("@", 1)[0]


def configured_specs(settings: Settings) -> Mapping[str, ModelSpec]:
    """``settings.models`` → their specs with the settings' overrides applied. A warm start
    or a gate for a model not among them is refused (a misspelt name was taken without a
    word), and so is a model no shipped spec has."""
    for setting, by_model in (
        ("model_warm_start", settings.model_warm_start),
        ("model_promotion", settings.model_promotion),
    ):
        unknown = sorted(set(by_model) - set(settings.models))
        if unknown:
            raise ConfigurationError(
                f"{setting}: {unknown[0]!r} is not a configured model "
                f"(STREAMLEARN_MODELS: {', '.join(settings.models)})"
            )
    for name in settings.models:
        if name not in SPECS:
            raise ConfigurationError(
                f"models: unknown model spec {name!r}; known: {', '.join(sorted(SPECS))}"
            )
    return {name: configured_spec(name, settings) for name in settings.models}
