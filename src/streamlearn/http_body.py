"""A request's body, or why it cannot be read: a client's mistake (400), never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

ENCODINGS = ("identity", "gzip", "deflate", "br", "zstd")
"""What aiohttp's parser decodes (``br`` with Brotli, ``zstd`` with backports.zstd: both
dependencies); it reads any other ``Content-Encoding`` as identity."""


JSON_TYPE = "application/json"


class UnreadableBodyError(Exception):
    """The body does not decode as its ``Content-Encoding`` says (or was cut short: a 400
    naming ``body``), or is in an encoding the server does not decode (a 415 naming
    ``Content-Encoding``); the answer to such a request must close the connection
    (``Response.force_close``)."""

    def __init__(self, message: str, status: int = 400, field: str = "body") -> None:
        super().__init__(message)
        self.status = status
        self.field = field


async def read_body(request: web.Request) -> bytes:
    """The body of ``request``, decoded as its ``Content-Encoding`` says; a body over the
    app's ``client_max_size`` still raises aiohttp's 413."""
    encoding = request.headers.get("Content-Encoding", "identity")
    # One coding (aiohttp reads a list, "gzip, br", as identity too); empty is identity.
    if encoding.strip() and encoding.strip().lower() not in ENCODINGS:
        request.content.feed_eof()  # unread, as below
        raise UnreadableBodyError(
            f"Content-Encoding {encoding}: not one of {', '.join(ENCODINGS)}",
            415,
            "Content-Encoding",
        )
    try:
        return await request.read()
    except (RequestPayloadError, HttpProcessingError):
        # The rest of the body is unreadable too: marked as read, or aiohttp would try to
        # read past it after the answer (to reuse the connection), fail again and drop the
        # connection with the answer unsent. The caller's answer closes the connection.
        request.content.feed_eof()
        raise UnreadableBodyError(
            f"the body does not decode as its Content-Encoding {encoding} says"
        ) from None


def require_json(request: web.Request) -> None:
    """Refuse (415, naming ``Content-Type``) a body not declared JSON: ``application/json``
    or a ``+json`` type, with any parameters. Besides saying what went wrong to a client
    that sent a form (curl's default), it keeps browsers out: a page may post a form,
    ``text/plain`` or an untyped body to another origin without asking it first (no CORS
    preflight), so a handler taking those as JSON acts on any site's say-so."""
    declared = request.headers.get("Content-Type")
    if declared == JSON_TYPE:
        return
    media = "" if declared is None else declared.partition(";")[0].strip().lower()
    if media == JSON_TYPE or (media.startswith("application/") and media.endswith("+json")):
        return
    request.content.feed_eof()  # unread: the answer closes the connection
    raise UnreadableBodyError(
        f"Content-Type {declared or '(none)'}: send application/json", 415, "Content-Type"
    )
