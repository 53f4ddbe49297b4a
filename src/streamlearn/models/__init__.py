"""Model specs (River pipelines), the signed snapshot format, and safe loading.

Shared by the learner, which builds snapshots, and prediction workers, which load them.
"""

from streamlearn.models.exceptions import (
    ModelError,
    SnapshotRejected,
    UnknownModelSpec,
)
from streamlearn.models.features import model_input, with_context
from streamlearn.models.snapshot import (
    LoadedModel,
    build_snapshot,
    load_model,
    verify_snapshot,
)
from streamlearn.models.specs import SPECS, BusinessRules, LabelDefinition, ModelSpec, get_spec

__all__ = [
    "SPECS",
    "BusinessRules",
    "LabelDefinition",
    "LoadedModel",
    "ModelError",
    "ModelSpec",
    "SnapshotRejected",
    "UnknownModelSpec",
    "build_snapshot",
    "get_spec",
    "load_model",
    "model_input",
    "verify_snapshot",
    "with_context",
]
