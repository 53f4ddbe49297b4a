"""The live dashboard: one web page of the running system (``streamlearn dashboard``).

It reads what the parts already publish (model snapshots' metadata, metrics, drift reports
and alerts from their topics; the pipeline's rates from end offsets; optionally the parts'
Prometheus endpoints) and pushes it to the page over server-sent events. See
``docs/dashboard.md``.
"""

from streamlearn.dashboard.app import create_dashboard_app
from streamlearn.dashboard.runner import run_dashboard, serve_dashboard
from streamlearn.dashboard.scrape import ScrapeTarget

__all__ = ["ScrapeTarget", "create_dashboard_app", "run_dashboard", "serve_dashboard"]
