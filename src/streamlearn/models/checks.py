"""Contract checks every shipped model spec must pass (run over ``SPECS`` by the unit tests).

In the spirit of ``river.checks``: generic properties, not per-model tests.

- **round trip**: a trained model's payload unpickles (restricted) to a model that predicts
  exactly the same and pickles to the same bytes;
- **resume is seamless**: learning on from a loaded payload gives the same bytes as
  learning once on all examples (what a restarted learner relies on);
- **deterministic**: two models built with the same seed and fed the same stream pickle to
  identical bytes (replay and restart rely on it);
- **prediction is pure**: predicting before each ``learn_one`` (prequential evaluation)
  leaves the model byte-identical to one that only learned, so the learner's payload equals
  a plain in-process ``learn_one`` loop;
- **input not mutated**: neither predicting nor learning changes the caller's dict;
- **missing and unseen features**: an empty input, nulls, NaN, new numeric keys and new
  categories neither raise nor give a non-finite score, before and after training.

Each check raises :class:`~streamlearn.models.exceptions.ContractViolation` naming the spec
(:func:`check_spec` also turns anything else the spec's model raises into one, with the
exception as its cause).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

from streamlearn.models import safe_pickle
from streamlearn.models.exceptions import ContractViolation
from streamlearn.models.inputs import ModelInput, model_input
from streamlearn.models.specs import ModelSpec
from streamlearn.models.synthetic import ClickWorld

Stream = list[tuple[ModelInput, float]]


def training_stream(spec: ModelSpec, n: int = 600, seed: int = 0) -> Stream:
    """``n`` (input, label) pairs from the synthetic world, labelled for ``spec``'s task."""
    stream: Stream = []
    for request in ClickWorld(seed).requests(n):
        label = float(request.clicked) if spec.task == "binary" else request.value
        stream.append((model_input(request.features, request.context), label))
    return stream


def _fail(spec: ModelSpec, what: str) -> ContractViolation:
    return ContractViolation(f"spec {spec.name}: {what}")


def _trained(spec: ModelSpec, stream: Stream, seed: int = 0, *, predict: bool = False) -> object:
    model = spec.new_model(seed)
    for x, label in stream:
        if predict:
            spec.predict(model, x)
        spec.learn(model, x, label)
    return model


def check_round_trip(spec: ModelSpec, stream: Stream) -> None:
    half = len(stream) // 2
    model = _trained(spec, stream[:half])
    payload = safe_pickle.dumps(model)
    loaded = safe_pickle.loads(payload)
    for x, _ in stream[half:]:
        before, after = spec.predict(model, x), spec.predict(loaded, x)
        if before != after and not (math.isnan(before) and math.isnan(after)):
            raise _fail(spec, f"loaded model predicts {after!r}, the original {before!r}")
    if safe_pickle.dumps(loaded) != payload:
        raise _fail(spec, "a loaded model pickles to other bytes than its payload")


def check_resume_is_seamless(spec: ModelSpec, stream: Stream) -> None:
    cut = len(stream) * 3 // 5
    resumed = safe_pickle.loads(safe_pickle.dumps(_trained(spec, stream[:cut])))
    for x, label in stream[cut:]:
        spec.learn(resumed, x, label)
    if safe_pickle.dumps(resumed) != safe_pickle.dumps(_trained(spec, stream)):
        raise _fail(spec, "learning on from a loaded payload differs from learning once")


def check_deterministic(spec: ModelSpec, stream: Stream) -> None:
    first = safe_pickle.dumps(_trained(spec, stream, seed=7))
    second = safe_pickle.dumps(_trained(spec, stream, seed=7))
    if first != second:
        raise _fail(spec, "two models with the same seed and stream pickle differently")


def check_prediction_is_pure(spec: ModelSpec, stream: Stream) -> None:
    learned_only = safe_pickle.dumps(_trained(spec, stream))
    prequential = safe_pickle.dumps(_trained(spec, stream, predict=True))
    if learned_only != prequential:
        raise _fail(spec, "predicting changes the model (prequential != learn-only)")


def check_input_not_mutated(spec: ModelSpec, stream: Stream) -> None:
    model = spec.new_model()
    for x, label in stream:
        original = copy.deepcopy(x)
        spec.predict(model, x)
        spec.learn(model, x, label)
        if x != original:
            raise _fail(spec, f"learning or predicting changed its input {original!r} to {x!r}")


def check_missing_and_unseen(spec: ModelSpec, stream: Stream) -> None:
    odd_inputs: list[ModelInput] = [
        {},
        model_input({"price": None, "hour": math.nan, "is_mobile": None}),
        model_input({"price": math.inf, "category": "never-seen", "brand_new_number": 3.5}),
        model_input({"brand_new_category": "x"}, {"placement": "floating", "new_ctx": "y"}),
    ]
    x0 = dict(stream[0][0])
    x0.pop(next(iter(x0)))
    odd_inputs.append(x0)
    for trained in (False, True):
        model = _trained(spec, stream) if trained else spec.new_model()
        for x in odd_inputs:
            try:
                score = spec.predict(model, x)
                spec.learn(model, x, stream[0][1])
            except Exception as exc:
                # Named with the input: River's bare KeyError: 'price' from a Select said
                # neither which spec nor what it was given.
                raise _fail(
                    spec,
                    f"raised {type(exc).__name__}: {exc} for {x!r} (trained={trained}); a "
                    "feature can be missing from any request, and the learner leaves out "
                    "(model_error) every example the model raises on",
                ) from exc
            if not math.isfinite(score):
                raise _fail(spec, f"non-finite score {score!r} for {x!r} (trained={trained})")


CHECKS: tuple[Callable[[ModelSpec, Stream], None], ...] = (
    check_round_trip,
    check_resume_is_seamless,
    check_deterministic,
    check_prediction_is_pure,
    check_input_not_mutated,
    check_missing_and_unseen,
)


def check_spec(spec: ModelSpec, n: int = 5000) -> None:
    """Run every contract check on ``spec`` (5000 examples: enough for a tree to split)."""
    stream = training_stream(spec, n)
    for check in CHECKS:
        try:
            check(spec, stream)
        except ContractViolation:
            raise
        except Exception as exc:  # the spec's model raised: named, as a violation
            raise _fail(spec, f"{check.__name__}: raised {type(exc).__name__}: {exc}") from exc
