"""Helpers of the prediction-worker tests: trained, signed snapshots and sample requests."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from streamlearn.models import SPECS, ModelSpec, build_snapshot, load_model
from streamlearn.models.checks import training_stream
from streamlearn.models.snapshot import LoadedModel
from streamlearn.models.synthetic import ClickWorld

KEY = "serving-test-key"


@functools.cache
def _payload(spec_name: str, n: int) -> bytes:
    from streamlearn.models import safe_pickle

    spec = SPECS[spec_name]
    model = spec.new_model()
    for x, label in training_stream(spec, n):
        spec.learn(model, x, label)
    return safe_pickle.dumps(model)


def snapshot(
    version: int,
    *,
    spec_name: str = "ctr",
    model_name: str | None = None,
    created: datetime | None = None,
    key: str = KEY,
    n: int = 300,
    spec: ModelSpec | None = None,
) -> dict[str, Any]:
    """A signed ``ModelSnapshot`` record of a trained ``spec_name`` model (described as
    ``spec`` when given: a configured variant of the shipped spec)."""
    return build_snapshot(
        spec or SPECS[spec_name],
        None,
        version=version,
        parent_version=version - 1 or None,
        trained_examples=n,
        offsets={("training.examples", 0): n},
        metrics={"auc": 0.7},
        created=created or datetime.now(UTC),
        key=key,
        model_name=model_name,
        payload=_payload(spec_name, n),
    )


def loaded(version: int, **options: Any) -> LoadedModel:
    return load_model(snapshot(version, **options), KEY)


def instances(n: int, seed: int = 0, users: str = "u") -> list[dict[str, Any]]:
    """``n`` realistic predict instances (features and context of the synthetic world)."""
    world = ClickWorld(seed)
    return [
        {"user_id": f"{users}-{i}", "features": r.features, "context": r.context}
        for i, r in enumerate(world.requests(n))
    ]
