"""The dashboard's door: with ``STREAMLEARN_DASHBOARD_API_TOKENS`` or
``STREAMLEARN_DASHBOARD_USERS`` set, the page, its static files and its API need
``Authorization: Bearer <token>`` or HTTP basic auth as one of the users.

A refusal is a 401 that offers both schemes (``WWW-Authenticate: Basic`` first, so a
browser asks for a user and password, and then sends them with every request of the page,
its ``EventSource`` included). The probes and ``/metrics`` stay open, as on every part:
orchestrators and Prometheus reach them without the page's login, and they show no figure
of the page. Secrets are compared in constant time (:mod:`streamlearn.http_auth`) and
never logged.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from streamlearn.http_auth import REALM, basic_accepted, bearer_accepted, token_secrets
from streamlearn.settings import Settings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def dashboard_door(settings: Settings) -> Middleware | None:
    """The middleware that asks for the dashboard's credentials; None when none are set."""
    tokens = token_secrets(settings.dashboard_api_tokens)
    users = token_secrets(settings.dashboard_users)
    if not tokens and not users:
        log.info(
            "dashboard open: no STREAMLEARN_DASHBOARD_API_TOKENS or STREAMLEARN_DASHBOARD_USERS"
        )
        return None

    @web.middleware
    async def require_login(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS and not (
            # Both checked whatever the other says: the time taken tells nothing.
            bearer_accepted(request, tokens) | basic_accepted(request, users)
        ):
            challenges: CIMultiDict[str] = CIMultiDict()
            if users:
                challenges.add("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
            if tokens:
                challenges.add("WWW-Authenticate", f'Bearer realm="{REALM}"')
            raise web.HTTPUnauthorized(
                reason="the dashboard needs a login (HTTP basic auth or a bearer token)",
                headers=challenges,
            )
        return await handler(request)

    return require_login
