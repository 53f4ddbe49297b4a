"""The HTTP servers' doors: bearer tokens, basic auth and per-client rate limits.

Each is an aiohttp middleware that raises aiohttp's own 401 or 429 (with
``WWW-Authenticate`` or ``Retry-After``); the server's error middleware, outside it, turns
that into its JSON error body and keeps those headers (:mod:`streamlearn.http_errors`).
Secrets are compared in constant time and never logged; a door without secrets configured
is open (the default, for development), and says so once at start.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

Guarded = Callable[[web.Request], bool]
"""Which requests the door applies to (the others pass)."""

REALM = "streamlearn"
T = TypeVar("T")


def _as_sent(given: str) -> bytes:
    """The bytes of a secret as the request carried them. aiohttp hands a header's bytes
    that are not UTF-8 on as lone surrogates, which ``str.encode()`` refuses: a stray byte
    in a key or token was a 500 (and a traceback in the log), not the 401 of a wrong one."""
    return given.encode("utf-8", "surrogateescape")


def _matches(given: str, secrets: Iterable[bytes]) -> bool:
    """Whether ``given`` is one of ``secrets``, comparing each in constant time."""
    candidate = _as_sent(given)
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(candidate, secret)
    return found


def owner_of(given: str, secrets: Iterable[tuple[bytes, T]]) -> T | None:
    """What the secret ``given`` is (its owner), comparing it with every secret in constant
    time (a dictionary lookup would stop early on a near miss); None: not one of them."""
    candidate = _as_sent(given)
    found: T | None = None
    for secret, owner in secrets:
        if hmac.compare_digest(candidate, secret):
            found = owner
    return found


def bearer_header(token: str | None) -> dict[str, str]:
    """The header a client sends ``token`` in (none without a token)."""
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def token_secrets(tokens: Iterable[SecretStr]) -> list[bytes]:
    """What :func:`bearer_accepted` compares a request's token with."""
    return [t.get_secret_value().encode() for t in tokens]


def bearer_accepted(request: web.BaseRequest, secrets: Iterable[bytes]) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <one of secrets>``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and _matches(token.strip(), secrets)


def basic_accepted(request: web.BaseRequest, secrets: Iterable[bytes]) -> bool:
    """Whether ``request`` carries HTTP basic auth as one of ``secrets`` (``user:password``)."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        given = ""
    return scheme.lower() == "basic" and bool(given) and _matches(given, secrets)


def bearer_tokens(tokens: Iterable[SecretStr], guarded: Guarded) -> Middleware:
    """Requests ``guarded`` selects need ``Authorization: Bearer <one of tokens>``."""
    secrets = token_secrets(tokens)

    @web.middleware
    async def require_bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guarded(request) and not bearer_accepted(request, secrets):
            raise web.HTTPUnauthorized(
                reason="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        return await handler(request)

    return require_bearer


def basic_auth(users: Iterable[SecretStr], guarded: Guarded) -> Middleware:
    """Requests ``guarded`` selects need HTTP basic auth as one of ``users`` (each
    ``name:password``, what confluent-kafka's ``basic.auth.user.info`` sends)."""
    secrets = token_secrets(users)

    @web.middleware
    async def require_basic(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guarded(request) and not basic_accepted(request, secrets):
            raise web.HTTPUnauthorized(
                reason="this request needs HTTP basic auth as a registry writer",
                headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
            )
        return await handler(request)

    return require_basic


class RateLimiter:
    """A token bucket per client: ``rate`` requests a second, bursts of ``burst``.

    At most ``max_clients`` buckets are kept (least recently seen dropped first: a
    dropped client starts again with a full bucket), so a flood of addresses cannot grow
    memory without bound.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst, self.max_clients, self.clock = rate, burst, max_clients, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait_s(self, client: str) -> float:
        """0 when ``client`` may go on now (a token is taken), else the seconds until
        a token is there."""
        now = self.clock()
        tokens, seen = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - seen) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait


def rate_limited(
    limiter: RateLimiter,
    client_of: Callable[[web.Request], str],
    guarded: Guarded,
    on_limited: Callable[[web.Request], None] | None = None,
) -> Middleware:
    """Requests ``guarded`` selects beyond the client's rate get 429 with ``Retry-After``
    (whole seconds, at least 1)."""

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guarded(request):
            wait = limiter.wait_s(client_of(request))
            if wait > 0:
                if on_limited is not None:
                    on_limited(request)
                raise web.HTTPTooManyRequests(
                    reason="too many requests from this address; retry after Retry-After",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )
        return await handler(request)

    return limit
