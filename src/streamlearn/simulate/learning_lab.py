"""The learning lab: the loop closed offline, served scores coming from the learned model.

:class:`~streamlearn.simulate.lab.Lab` runs the simulated world and the real agents in
virtual time without Kafka, with a stand-in model. The learning lab runs the real
label-join and learner steps over it instead of preprocess (they do not read
``events.clean``, so hits are not even mapped to ``telemetry.events``), and serves what
the learner has published: every ``model.state`` snapshot is verified and loaded as a
prediction worker loads it (:func:`~streamlearn.models.snapshot.load_model`) and serves
from the next simulated second on, at the learner's cadence (the spec's
``snapshot_every_s``). Before a model's first snapshot its requests get the spec's
fallback score (version 0, ``degraded``), as a worker answers without a model.

Each model of ``settings.models`` is an experiment arm (users split by a stable hash, as
``up --simulate`` splits them), so one run judges every model on its own traffic.

What users got is judged against the outcome the world decided when the page was made
(seen, clicked within the label horizon), not against the examples label-join emits: every
strategy of handling the feedback delay is then judged on the same impressions, whatever
examples it makes. Per window of serving time (:meth:`LearningLab.figures`):

- ``served_auc``: AUC of the served scores within each serving version, averaged weighted
  by examples over versions with both classes (as :mod:`~streamlearn.models.served_metrics`
  does, but exact rather than River's 10-threshold approximation: a goal of 0.005 needs it);
  fallbacks (version 0) left out;
- ``ceiling_auc``: AUC of the true probabilities of the same impressions (no model ranks
  better);
- ``log_loss``, ``ece`` (reliability bins of
  :class:`~streamlearn.monitoring.calibration.ReliabilityBins`) of the served scores and
  ``truth_log_loss``, ``truth_ece`` of the true probabilities;
- ``prequential_auc``, ``prequential_log_loss``: the learner's own evaluation of the examples
  it learned (scored just before learning), grouped by the example's serving time; only
  serving times at least a label horizon, the allowed lateness and :data:`SETTLE_S`
  before the lab's present, whose examples are all learned (of later ones, as labelled,
  the positives are and the negatives not yet: a biased sample).

Deterministic: the same config and settings give the same figures (everything is seeded
and run in virtual time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import SecretStr

from streamlearn.agents.label_join import LabelJoinStep
from streamlearn.agents.learner import make_learner
from streamlearn.models.configured import configured_specs
from streamlearn.models.inputs import model_input
from streamlearn.models.snapshot import load_model
from streamlearn.models.specs import ModelSpec
from streamlearn.serving.scoring import Scorer, scorer_for
from streamlearn.settings import ExplicitSettings, Settings
from streamlearn.simulate.lab import DEFAULT_START_MS, Lab, Serving
from streamlearn.simulate.lab_figures import (
    Figures,
    JudgedColumns,
    auc,
    reliability,
    served_auc,
)
from streamlearn.simulate.traffic import Hit, Slot, TrafficConfig

LAB_SIGNING_KEY = SecretStr("learning-lab-signing-key")
"""Signs the lab's snapshots when the settings name no key."""


SETTLE_S = 10.0
"""Beyond a label's horizon and lateness, until its example is learned: the impression
comes up to 1.5 s after serving (the world's), and label-join closes a horizon when a later
feedback record of the partition passes it (measured at 20 page views a second: at most
27.8 s after serving with a 20 s horizon and 5 s of lateness)."""


def learning_settings(**overrides: Any) -> Settings:
    """The settings of ``streamlearn up --simulate`` that matter to learning (both models,
    a 20 s label horizon, 5 s of lateness), the spec's own snapshot cadence, a lab key;
    nothing from the environment (:class:`~streamlearn.settings.ExplicitSettings`)."""
    values: dict[str, Any] = {
        "models": ["ctr", "ctr_tree"],
        "label_horizon_s": 20,
        "label_allowed_lateness_s": 5,
        "model_signing_key": LAB_SIGNING_KEY,
    }
    values.update(overrides)
    return ExplicitSettings(**values)


def learning_config(seed: int = 0, **overrides: Any) -> TrafficConfig:
    """The simulator's default world without what only preprocess sees (bots, duplicates,
    malformed hits): they get no recommendations, so they change nothing learned here."""
    values: dict[str, Any] = {
        "seed": seed,
        "bot_share": 0.0,
        "duplicate_share": 0.0,
        "malformed_share": 0.0,
    }
    values.update(overrides)
    return TrafficConfig(**values)


class LearningLab(Lab):
    """The simulated world served by the models its learner publishes (module docstring).

    ``LearningLab(learning_config(), settings=learning_settings()).run(1800)``, then
    :meth:`figures` (a span) or :meth:`windows` (one per ``window_s``).
    """

    built_in_steps = ()
    """label-join and learner, made by the lab itself from its specs (:attr:`specs`)."""
    sends_events = False

    def __init__(
        self,
        config: TrafficConfig,
        *,
        settings: Settings | None = None,
        start_ms: int = DEFAULT_START_MS,
        partitions: int = 6,
        specs: Mapping[str, ModelSpec] | None = None,
        keep_inputs: bool = False,
        baselines: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        settings = settings or learning_settings()
        if settings.model_signing_key is None:
            settings = settings.model_copy(update={"model_signing_key": LAB_SIGNING_KEY})
        self.specs: Mapping[str, ModelSpec] = (
            configured_specs(settings) if specs is None else dict(specs)
        )
        """The models served and learned (by default those the settings configure; a
        bench passes variants, e.g. another label strategy)."""
        self.current: dict[str, tuple[int, Scorer]] = {}
        """Model name → (version, scorer) served now: the newest snapshot loaded, scored
        as a prediction worker scores it (:func:`~streamlearn.serving.scoring.scorer_for`,
        which answers exactly what ``spec.predict`` answers)."""
        self.published: dict[str, list[tuple[float, int]]] = {name: [] for name in self.specs}
        """Model name → (simulated second it started serving, version), in order."""
        self.withheld: dict[str, list[tuple[float, int]]] = {name: [] for name in self.specs}
        """Model name → (second published, version) of versions its promotion gate held
        back (published, never served)."""
        self.judged_worse: dict[str, int] = {}
        """Model name → how many of :attr:`withheld` were judged worse than the promoted
        version (the others came before a full window of evidence)."""
        self.keep_inputs = keep_inputs
        """Whether :meth:`judged` returns the model inputs too (another learner can then be
        judged on the same impressions); then :attr:`served_models` keeps every version."""
        self.served_models: dict[str, dict[int, Any]] = {name: {} for name in self.specs}
        """Model name → version → the loaded model that served (with ``keep_inputs``), so
        a version can be compared with the one before it on the same impressions."""
        self._served_rows = {name: JudgedColumns() for name in self.specs}
        self._prequential_rows = {name: JudgedColumns() for name in self.specs}
        self._log_read = 0
        serving = Serving(model_name=next(iter(self.specs)), arms=tuple(self.specs))
        super().__init__(
            config, start_ms=start_ms, settings=settings, serving=serving, partitions=partitions
        )
        self._state_serde = self.cluster.catalogue.topic("model.state").serde(self.registry)
        self._key = settings.model_signing_key
        # On model.state before the learner opens its partitions: the snapshots a spec's
        # warm_start names (simulate/lab_baseline.py); never served as such.
        for baseline in baselines:
            value = self._state_serde.encode(dict(baseline))
            self.cluster.produce("model.state", str(baseline["model_name"]).encode(), value)
        self._log_read = len(self.cluster.log)
        specs_ = self.specs
        self.add_step(lambda env: LabelJoinStep(env.settings, env.metrics, specs_))
        learner = make_learner(self.environment, specs_)
        self.add_step(lambda env: learner)
        for name, online in learner.learners.items():
            online.on_scored = self._prequential_of(name)

    # -- serving ---------------------------------------------------------------------------

    def _score(self, hit: Hit, slot: Slot, arm: str | None) -> tuple[str, int, float]:
        assert arm is not None  # every model is an arm
        spec = self.specs[arm]
        current = self.current.get(arm)
        if current is None:
            return arm, 0, spec.rules.fallback_score
        version, score = current
        return arm, version, spec.rules.clamp(score(slot.features, slot.context))

    def _served(
        self, request_id: str, hit: Hit, slot: Slot, model_name: str, version: int, score: float
    ) -> None:
        if not slot.seen:
            return  # never labelled: nothing to judge
        horizon_s = self.specs[model_name].label.horizon_s
        rows = self._served_rows[model_name]
        rows.at_s.append(hit.at_s)
        rows.version.append(version)
        rows.score.append(score)
        rows.truth.append(slot.p_click)
        rows.label.append(slot.clicked and slot.click_after_s <= horizon_s)
        rows.weight.append(1.0)
        if self.keep_inputs:
            rows.inputs.append(model_input(slot.features, slot.context))

    def _advance(self, now_ms: int) -> None:
        super()._advance(now_ms)
        log = self.cluster.log
        for _, message in log[self._log_read :]:
            if message.topic == "model.state" and message.value is not None:
                snapshot = self._state_serde.decode(message.value)
                assert self._key is not None
                name, version = str(snapshot["model_name"]), int(snapshot["version"])
                if snapshot["metrics"].get("promoted", 1.0) == 0.0:
                    # Published, not promoted by the spec's gate: workers keep the old one.
                    self.withheld[name].append((self.elapsed_s, version))
                    if "gate_log_loss" in snapshot["metrics"]:  # judged, not just early
                        self.judged_worse[name] = self.judged_worse.get(name, 0) + 1
                    continue
                loaded = load_model(snapshot, self._key, specs=self.specs)
                scorer = scorer_for(loaded.spec, loaded.model)
                self.current[loaded.model_name] = (loaded.version, scorer)
                if self.keep_inputs:
                    self.served_models[loaded.model_name][loaded.version] = loaded.model
                self.published[loaded.model_name].append((self.elapsed_s, loaded.version))
        self._log_read = len(log)

    def _prequential_of(self, name: str) -> Any:
        rows = self._prequential_rows[name]
        start_ms = self.start_ms

        def scored(served_ms: int | None, label: float, score: float, weight: float) -> None:
            assert served_ms is not None  # label-join's examples always have one
            rows.at_s.append((served_ms - start_ms) / 1000)
            rows.score.append(score)
            rows.label.append(label >= 0.5)
            rows.weight.append(weight)

        return scored

    # -- results ---------------------------------------------------------------------------

    def figures(self, start_s: float = 0.0, end_s: float | None = None) -> dict[str, Figures]:
        """Each model's figures over impressions served in [start_s, end_s)."""
        end = self.elapsed_s if end_s is None else end_s
        return {name: self._figures(name, start_s, end) for name in self.specs}

    def windows(self, window_s: float = 60.0) -> list[dict[str, Figures]]:
        """:meth:`figures` of each whole window of ``window_s`` from the start (a last one
        cut short by the run's end is not one: 3 s of data printed as a minute)."""
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, not {window_s}")
        count = math.floor(self.elapsed_s / window_s + 1e-9)
        return [self.figures(i * window_s, (i + 1) * window_s) for i in range(count)]

    def _figures(self, name: str, start_s: float, end_s: float) -> Figures:
        rows = self._served_rows[name].arrays()
        at = rows["at_s"]
        chosen = (at >= start_s) & (at < end_s)
        version = rows["version"][chosen]
        score = rows["score"][chosen]
        truth = rows["truth"][chosen]
        label = rows["label"][chosen]
        weight = np.ones(len(score))
        served = reliability(score, label, weight)
        ideal = reliability(truth, label, weight)
        by_truth = reliability(score, truth, weight)
        pre = self._prequential_rows[name].arrays()
        pre_at = pre["at_s"]
        # Examples served in the last horizon and lateness are not all learned yet (as
        # labelled: their positives are, their negatives not): left out, or they bias it.
        labelled_s = self.elapsed_s - self.label_delay_s(name)
        pre_chosen = (pre_at >= start_s) & (pre_at < min(end_s, labelled_s))
        pre_score = pre["score"][pre_chosen]
        pre_label = pre["label"][pre_chosen]
        pre_bins = reliability(pre_score, pre_label, pre["weight"][pre_chosen])
        return Figures(
            start_s=start_s,
            end_s=end_s,
            impressions=int(chosen.sum()),
            served_auc=served_auc(version, label, score),
            ceiling_auc=auc(label, truth),
            log_loss=None if served is None else served.log_loss(),
            truth_log_loss=None if ideal is None else ideal.log_loss(),
            ece=None if served is None else served.ece(),
            prequential_auc=auc(pre_label, pre_score),
            prequential_log_loss=None if pre_bins is None else pre_bins.log_loss(),
            versions=len(np.unique(version[version > 0])),
            truth_ece=None if ideal is None else ideal.ece(),
            ece_by_truth=None if by_truth is None else by_truth.ece(),
        )

    def label_delay_s(self, name: str) -> float:
        """:func:`label_delay_s` of one of the lab's models."""
        return label_delay_s(self.specs[name], self.settings)

    def inputs(self, name: str) -> list[dict[str, Any]]:
        """One model's judged impressions' model inputs (with ``keep_inputs``)."""
        return self._served_rows[name].inputs

    def judged(self, name: str) -> dict[str, np.ndarray[Any, Any]]:
        """One model's judged impressions as arrays (serving second, version, served score,
        true probability, label), in serving order."""
        arrays = self._served_rows[name].arrays()
        return {key: arrays[key] for key in ("at_s", "version", "score", "truth", "label")}


def label_delay_s(spec: ModelSpec, settings: Settings) -> float:
    """How long after serving an example is learned, at the latest: its label's horizon
    (from the impression) and the allowed lateness, and :data:`SETTLE_S`. The prequential
    figures leave out the serving times this close to the lab's present."""
    return spec.label.horizon_s + settings.label_allowed_lateness_s + SETTLE_S


def steady_state(lab: LearningLab, last_s: float = 300.0) -> dict[str, Figures]:
    """Each model's figures over the last ``last_s`` simulated seconds run."""
    return lab.figures(max(0.0, lab.elapsed_s - last_s), lab.elapsed_s)


__all__: Sequence[str] = (
    "LearningLab",
    "label_delay_s",
    "learning_config",
    "learning_settings",
    "steady_state",
)
