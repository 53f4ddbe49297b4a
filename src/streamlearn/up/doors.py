"""How `up` reaches the HTTP servers it runs, with their doors on or off.

The parts read the same settings as `up` (they inherit its environment), so with
``STREAMLEARN_HTTP_TLS_CERTFILE`` set the collector, the prediction worker, the dashboard
and the registry serve HTTPS only, with ``STREAMLEARN_SERVE_API_TOKENS`` the prediction API
wants a bearer token, and with collector write keys the collector wants one. `up` then
speaks to them as any client must: https URLs verified with ``STREAMLEARN_HTTP_TLS_CAFILE``
(the certificate must name 127.0.0.1, where `up` runs them), the first API token on the
model list it polls and on the simulator's predictions, and a write key on the
simulator's events. The agents' and the archive's metrics ports stay plain HTTP on
127.0.0.1, as they do outside `up`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import aiohttp

from streamlearn.collector.write_keys import configured_write_keys
from streamlearn.http_auth import bearer_header
from streamlearn.http_tls import client_ssl_context, scheme
from streamlearn.settings import Settings

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Doors:
    """The scheme, TLS trust and credentials `up` uses towards its own HTTP servers."""

    scheme: str = "http"
    client_ssl: ssl.SSLContext | None = None
    """Verifies the servers' certificates (None: plain HTTP)."""
    api_token: str | None = field(default=None, repr=False)
    """A bearer token of the prediction API (None: it is open)."""
    write_key: str | None = field(default=None, repr=False)
    """A collector write key (None: the collector takes events without one)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> Doors:
        tls = scheme(settings)
        tokens = settings.serve_api_tokens
        # Sorted by app, so the simulator writes as the same app on every run.
        keys = sorted(configured_write_keys(settings).items(), key=lambda item: (item[1], item[0]))
        return cls(
            scheme=tls,
            client_ssl=client_ssl_context(settings) if tls == "https" else None,
            api_token=tokens[0].get_secret_value() if tokens else None,
            write_key=keys[0][0] if keys else None,
        )

    def url(self, port: int, path: str = "") -> str:
        """The URL of one of `up`'s HTTP servers (not the agents' metrics ports)."""
        return f"{self.scheme}://{HOST}:{port}{path}"

    @property
    def api_headers(self) -> dict[str, str]:
        return bearer_header(self.api_token)

    def session(self, timeout_s: float = 2.0) -> aiohttp.ClientSession:
        return client_session(self.client_ssl, timeout_s)


def client_session(
    client_ssl: ssl.SSLContext | None, timeout_s: float = 2.0
) -> aiohttp.ClientSession:
    """A client session that verifies https servers with ``client_ssl`` (None: the
    system's trust store; plain http URLs are unaffected)."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        connector=aiohttp.TCPConnector(ssl=client_ssl or True),
    )
