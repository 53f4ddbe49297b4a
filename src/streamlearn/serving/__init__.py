"""Stateless prediction workers: follow the newest verified model state, serve it over HTTP
with experiment routing, business rules and graceful degradation, and log every prediction.
"""

from streamlearn.serving.app import create_serving_app
from streamlearn.serving.state import SERVING, Serving

__all__ = ["SERVING", "Serving", "create_serving_app"]
