"""Model specs (River pipelines), the signed snapshot format, and safe loading.

Shared by the learner, which builds snapshots, and prediction workers, which load them.

The names below are loaded on first use (PEP 562), not when the package is: importing a
River-free module of it (``models.inputs``, ``models.prepared``) must not load River, numpy
and scipy, which the learner agent's decoding process would otherwise carry for nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlearn.lazy_names import lazy_names

if TYPE_CHECKING:
    from streamlearn.models.exceptions import ModelError, SnapshotRejected, UnknownModelSpec
    from streamlearn.models.inputs import model_input, with_context
    from streamlearn.models.snapshot import (
        LoadedModel,
        build_snapshot,
        load_model,
        verify_snapshot,
    )
    from streamlearn.models.specs import (
        SPECS,
        BusinessRules,
        LabelDefinition,
        ModelSpec,
        get_spec,
    )

_HOMES = {
    "ModelError": "exceptions",
    "SnapshotRejected": "exceptions",
    "UnknownModelSpec": "exceptions",
    "model_input": "inputs",
    "with_context": "inputs",
    "LoadedModel": "snapshot",
    "build_snapshot": "snapshot",
    "load_model": "snapshot",
    "verify_snapshot": "snapshot",
    "SPECS": "specs",
    "BusinessRules": "specs",
    "LabelDefinition": "specs",
    "ModelSpec": "specs",
    "get_spec": "specs",
}


__getattr__ = lazy_names(__name__, _HOMES, globals())


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
