"""Errors of the dashboard."""

from streamlearn.exceptions import StreamlearnError


class DashboardError(StreamlearnError):
    """The dashboard cannot start as configured (e.g. an unusable ``--scrape`` target)."""
