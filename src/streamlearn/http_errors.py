"""What an HTTP error answered as JSON must keep of aiohttp's own error response."""

from __future__ import annotations

from aiohttp import web

_BODY_HEADERS = {"content-type", "content-length"}


def kept_headers(error: web.HTTPException) -> dict[str, str]:
    """The headers ``error`` carries that its status requires or promises (a 405's
    ``Allow``, RFC 9110 section 15.5.6; a ``Retry-After``; a ``WWW-Authenticate``), without
    those of the plain-text body the JSON one replaces."""
    return {k: v for k, v in error.headers.items() if k.lower() not in _BODY_HEADERS}
