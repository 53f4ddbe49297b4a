"""Stateless prediction workers: follow the newest verified model state, serve it over HTTP
with experiment routing, business rules and graceful degradation, and log every prediction.

The names below are loaded on first use (PEP 562): ``up`` and the command line read the
experiments' topic (``serving.experiment_topic``) without the worker's River models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from streamlearn.lazy_names import lazy_names

if TYPE_CHECKING:
    from streamlearn.serving.app import create_serving_app
    from streamlearn.serving.state import SERVING, Serving

__getattr__ = lazy_names(
    __name__,
    {"create_serving_app": "app", "SERVING": "state", "Serving": "state"},
    globals(),
)

__all__ = ["SERVING", "Serving", "create_serving_app"]
