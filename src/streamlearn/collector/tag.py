"""``GET /streamlearn.js``: the browser tag (built from ``js/src`` by ``js/build.mjs``).

Two URLs: ``/streamlearn.js`` follows upgrades (cached an hour, then revalidated with its
ETag), ``/streamlearn-<version>.js`` never changes (cached a year, ``immutable``) for sites
that pin a release. Gzipped once at start for clients that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from importlib.metadata import version
from importlib.resources import files

from aiohttp import web

LATEST_MAX_AGE_S = 3600
PINNED_MAX_AGE_S = 365 * 86400


@dataclass(frozen=True)
class Tag:
    body: bytes
    gzipped: bytes
    etag: str
    """The identity body's strong ETag; the gzipped body's is another (RFC 9110 8.8.3: a
    strong validator names one representation, byte for byte)."""
    gzip_etag: str
    version: str

    @classmethod
    def load(cls) -> Tag:
        body = files("streamlearn.collector").joinpath("static/streamlearn.js").read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        return cls(
            body=body,
            gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            etag=f'"{digest}"',
            gzip_etag=f'"{digest}-gzip"',
            version=version("streamlearn"),
        )

    def response(self, request: web.Request, max_age_s: int, immutable: bool) -> web.Response:
        gzipped = accepts_gzip(request.headers.get("Accept-Encoding", ""))
        etag = self.gzip_etag if gzipped else self.etag
        headers = {
            "Cache-Control": f"public, max-age={max_age_s}" + (", immutable" if immutable else ""),
            "ETag": etag,
            "Vary": "Accept-Encoding",
            # Any site may load the tag; it reads nothing of the collector's origin.
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        }
        if none_match(request.headers.get("If-None-Match"), etag):
            return web.Response(status=304, headers=headers)
        body = self.body
        if gzipped:
            body = self.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(
            body=body, headers=headers, content_type="text/javascript", charset="utf-8"
        )


def none_match(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` matches ``etag`` (RFC 9110 13.1.2: ``*`` matches any current
    representation; otherwise a listed tag equal by the weak comparison, ``W/`` ignored)."""
    if if_none_match is None:
        return False
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` header takes gzip (RFC 9110 section 12.5.3: by
    name, or by ``*`` when gzip is not named; ``q=0`` refuses)."""
    weights: dict[str, float] = {}
    for part in accept_encoding.split(","):
        coding, *parameters = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding.lower()] = weight
    return weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0))) > 0


TAG: web.AppKey[Tag] = web.AppKey("tag", Tag)


async def latest_tag(request: web.Request) -> web.Response:
    return request.app[TAG].response(request, LATEST_MAX_AGE_S, immutable=False)


async def pinned_tag(request: web.Request) -> web.Response:
    tag = request.app[TAG]
    if request.match_info["version"] != tag.version:
        raise web.HTTPNotFound(reason=f"this collector serves streamlearn.js {tag.version}")
    return tag.response(request, PINNED_MAX_AGE_S, immutable=True)


def add_tag_routes(app: web.Application) -> None:
    app[TAG] = Tag.load()
    app.router.add_get("/streamlearn.js", latest_tag)
    app.router.add_get("/streamlearn-{version}.js", pinned_tag)
