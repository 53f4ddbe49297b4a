"""Security headers on every response of the dashboard, whatever produced it (a page, a
static file, an API answer, an error), set in ``on_response_prepare`` so none is missed.

The page runs only the dashboard's own scripts and styles (``default-src 'self'``, no
inline script or style, no ``eval``: the CSP has no ``'unsafe-inline'`` or
``'unsafe-eval'``), with Trusted Types enforced so no script can assign HTML strings to the
DOM, may not be framed (``frame-ancestors 'none'``: no clickjacking), and its answers are
never sniffed into another type. It has no forms and posts nothing.
"""

from __future__ import annotations

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if "Cache-Control" not in response.headers:
        # Live figures and the page that shows them: always asked again.
        response.headers["Cache-Control"] = "no-cache"
